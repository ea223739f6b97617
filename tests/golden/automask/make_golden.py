#!/usr/bin/python3
"""Writes tests/golden/automask/automask.ref.pt and cases.json: the output of
segment-anything's SamAutomaticMaskGenerator (and of ksugar's fork of it, the one
samapi runs) on the tiny random-weight SAM, for the C++ parity test
tests/models/sam/test_automask.cpp.

The reference code is imported at run time from checkouts OUTSIDE the project:

  git -C /work/.mirror/facebookresearch+segment-anything/repo worktree add --detach /tmp/sa-ref dca509f
  git -C /work/.mirror/ksugar+MobileSAM/repo worktree add --detach /tmp/ks-ref 41ac534
  /usr/bin/python3 tests/golden/automask/make_golden.py --sa /tmp/sa-ref --ks /tmp/ks-ref \
      --shared /work/shared

The fork (mobile_sam/automatic_mask_generator.py + mobile_sam/utils/amg.py) is run on
segment-anything's own modeling and predictor: a throw-away package is assembled in a
temporary folder from segment-anything's tree with the fork's two files laid over it.
Runs on Debian's python3-torch 1.13.1, python3-torchvision 0.14.1, python3-opencv 4.6.
Deterministic: re-running gives the same tensors.
"""
import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
from functools import partial

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def build_tiny_sam(pkg, cfg, weights):
    m = pkg.modeling
    emb = cfg["img_size"] // cfg["patch_size"]
    sam = m.Sam(
        image_encoder=m.ImageEncoderViT(
            depth=cfg["encoder_depth"], embed_dim=cfg["encoder_embed_dim"],
            img_size=cfg["img_size"], mlp_ratio=cfg["mlp_ratio"],
            norm_layer=partial(torch.nn.LayerNorm, eps=cfg["layernorm_eps"]),
            num_heads=cfg["encoder_num_heads"], patch_size=cfg["patch_size"],
            qkv_bias=cfg["qkv_bias"], use_rel_pos=cfg["use_rel_pos"],
            global_attn_indexes=cfg["encoder_global_attn_indexes"],
            window_size=cfg["window_size"], out_chans=cfg["prompt_embed_dim"]),
        prompt_encoder=m.PromptEncoder(
            embed_dim=cfg["prompt_embed_dim"], image_embedding_size=(emb, emb),
            input_image_size=(cfg["img_size"], cfg["img_size"]),
            mask_in_chans=cfg["mask_in_chans"]),
        mask_decoder=m.MaskDecoder(
            num_multimask_outputs=cfg["num_multimask_outputs"],
            transformer=m.TwoWayTransformer(
                depth=cfg["decoder_depth"], embedding_dim=cfg["prompt_embed_dim"],
                mlp_dim=cfg["decoder_mlp_dim"], num_heads=cfg["decoder_num_heads"],
                attention_downsample_rate=cfg["attention_downsample_rate"]),
            transformer_dim=cfg["prompt_embed_dim"], iou_head_depth=cfg["iou_head_depth"],
            iou_head_hidden_dim=cfg["iou_head_hidden_dim"]),
        pixel_mean=cfg["pixel_mean"], pixel_std=cfg["pixel_std"])
    sam.load_state_dict(torch.load(weights))
    sam.eval()
    return sam


def import_package(root, name):
    sys.path.insert(0, root)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def assemble_fork(sa_root, ks_root, tmp):
    dst = os.path.join(tmp, "ks_amg_ref")
    shutil.copytree(os.path.join(sa_root, "segment_anything"), dst)
    shutil.copy(os.path.join(ks_root, "mobile_sam", "automatic_mask_generator.py"),
                os.path.join(dst, "automatic_mask_generator.py"))
    shutil.copy(os.path.join(ks_root, "mobile_sam", "utils", "amg.py"),
                os.path.join(dst, "utils", "amg.py"))
    return import_package(tmp, "ks_amg_ref")


def synthetic_image():
    """72 x 100 RGB: a few flat shapes on a gradient with mild deterministic noise."""
    h, w = 72, 100
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.float64)
    img[..., 0] = 60 + 80 * xx / w
    img[..., 1] = 90 + 40 * yy / h
    img[..., 2] = 140
    disc = (xx - 28) ** 2 + (yy - 30) ** 2 < 15 ** 2
    img[disc] = (230, 60, 50)
    rect = (xx >= 55) & (xx < 88) & (yy >= 12) & (yy < 34)
    img[rect] = (40, 200, 80)
    ring = np.abs(np.hypot(xx - 70, yy - 55) - 10) < 3
    img[ring] = (250, 240, 40)
    tri = (yy > 45) & (yy < 68) & (np.abs(xx - 20) < (yy - 45) * 0.8)
    img[tri] = (30, 30, 160)
    rng = np.random.RandomState(7)
    img += rng.randint(-6, 7, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def tissue_image(shared):
    """90 x 120 RGB: a PAS glomerulus patch (data/glomeruli/images/10003.png, Apache-2.0),
    rows 300..660, cols 280..760, reduced 4x by cv2.INTER_AREA."""
    import cv2
    bgr = cv2.imread(os.path.join(shared, "data/glomeruli/images/10003.png"), cv2.IMREAD_COLOR)
    crop = bgr[300:660, 280:760]
    small = cv2.resize(crop, (120, 90), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small[..., ::-1])


def small_image():
    """32 x 40 RGB: synthetic_image() reduced by cv2.INTER_AREA. Below ~40 px a side every
    crop edge lies within 20 px of an image edge, so masks of crops survive the
    crop-edge filter (random weights give masks that fill their crop)."""
    import cv2
    return np.ascontiguousarray(cv2.resize(synthetic_image(), (40, 32),
                                           interpolation=cv2.INTER_AREA))


# Each case: image, generator ("sa" = segment-anything, "ks" = ksugar's fork), options.
# Thresholds are low because random weights give low IoU predictions (-0.7..0.5) and
# soft logits (with the default offset 1.0 every stability score is below 0.1).
LOW = dict(pred_iou_thresh=-1.0, stability_score_thresh=0.5, stability_score_offset=0.1)
CASES = [
    ("synth_default", "synth", "sa", dict(LOW, points_per_side=8, box_nms_thresh=1.0)),
    ("tissue_iou_filter", "tissue", "sa", dict(points_per_side=16, pred_iou_thresh=0.01,
                                               stability_score_thresh=0.3,
                                               stability_score_offset=0.1,
                                               box_nms_thresh=0.99, points_per_batch=50)),
    ("small_crops", "small", "sa", dict(LOW, points_per_side=8, box_nms_thresh=1.0,
                                        crop_n_layers=1, crop_n_points_downscale_factor=2,
                                        crop_nms_thresh=0.7)),
    ("synth_min_area", "synth", "sa", dict(LOW, points_per_side=8, box_nms_thresh=1.0,
                                           min_mask_region_area=100)),
    ("synth_single", "synth", "ks", dict(LOW, points_per_side=8, box_nms_thresh=1.0,
                                         output_type="Single mask", include_image_edge=True)),
    ("synth_single_no_edge", "synth", "ks", dict(LOW, points_per_side=8, box_nms_thresh=1.0,
                                                 output_type="Single mask",
                                                 include_image_edge=False)),
    ("small_smallest_crops", "small", "ks", dict(LOW, points_per_side=6, box_nms_thresh=0.9,
                                                 crop_n_layers=1, crop_nms_thresh=0.9,
                                                 output_type="Multi-mask (smallest)",
                                                 include_image_edge=True)),
    ("synth_all", "synth", "ks", dict(LOW, points_per_side=4, output_type="Multi-mask (all)",
                                      include_image_edge=True)),
    ("synth_largest", "synth", "ks", dict(LOW, points_per_side=6, box_nms_thresh=1.0,
                                          output_type="Multi-mask (largest)",
                                          include_image_edge=True)),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sa", required=True, help="segment-anything checkout (dca509f)")
    ap.add_argument("--ks", required=True, help="ksugar/MobileSAM checkout (41ac534)")
    ap.add_argument("--shared", required=True, help="the shared folder (golden/models, data)")
    ap.add_argument("--out", default=HERE)
    args = ap.parse_args()
    torch.set_num_threads(1)

    sa = import_package(args.sa, "segment_anything")
    importlib.import_module("segment_anything.automatic_mask_generator")
    with tempfile.TemporaryDirectory() as tmp:
        ks = assemble_fork(args.sa, args.ks, tmp)
        importlib.import_module("ks_amg_ref.automatic_mask_generator")
        cfg = json.load(open(os.path.join(args.shared, "golden/models/sam_tiny.json")))["config"]
        weights = os.path.join(args.shared, "golden/models/sam_tiny.pth")
        model = build_tiny_sam(sa, cfg, weights)
        ks_model = build_tiny_sam(ks, cfg, weights)
        images = {"synth": synthetic_image(), "tissue": tissue_image(args.shared),
                  "small": small_image()}

        out, meta = {}, {"reference": {"segment_anything": "dca509f",
                                       "ksugar/MobileSAM": "41ac534"},
                         "torch": torch.__version__, "cases": []}
        for name, image in images.items():
            out[f"image.{name}"] = torch.from_numpy(image.copy())
        for name, img_name, which, opts in CASES:
            image = images[img_name]
            if which == "sa":
                gen = sa.automatic_mask_generator.SamAutomaticMaskGenerator(model, **opts)
            else:
                pred = ks.predictor.SamPredictor(ks_model)
                gen = ks.automatic_mask_generator.SamAutomaticMaskGenerator(pred, **opts)
            with torch.no_grad():
                anns = gen.generate(image)
            n = len(anns)
            h, w = image.shape[:2]
            masks = np.stack([a["segmentation"] for a in anns]) if n else np.zeros((0, h, w), bool)
            out[f"{name}.masks_packed"] = torch.from_numpy(
                np.packbits(masks.reshape(n, h * w), axis=1))
            out[f"{name}.area"] = torch.tensor([a["area"] for a in anns], dtype=torch.int64)
            out[f"{name}.bbox"] = torch.tensor([a["bbox"] for a in anns],
                                               dtype=torch.float64).reshape(n, 4)
            out[f"{name}.predicted_iou"] = torch.tensor([a["predicted_iou"] for a in anns],
                                                        dtype=torch.float64)
            out[f"{name}.stability_score"] = torch.tensor([a["stability_score"] for a in anns],
                                                          dtype=torch.float64)
            out[f"{name}.point_coords"] = torch.tensor([a["point_coords"][0] for a in anns],
                                                       dtype=torch.float64).reshape(n, 2)
            out[f"{name}.crop_box"] = torch.tensor([a["crop_box"] for a in anns],
                                                   dtype=torch.float64).reshape(n, 4)
            areas = masks.reshape(n, h * w).sum(1)
            meta["cases"].append({
                "name": name, "image": img_name, "generator": which,
                "image_hw": [h, w], "options": opts, "masks": n,
                "area_min": int(areas.min()) if n else 0,
                "area_max": int(areas.max()) if n else 0,
                "crop_boxes": sorted({tuple(a["crop_box"]) for a in anns}),
            })
            print(f"{name}: {n} masks, area {meta['cases'][-1]['area_min']}.."
                  f"{meta['cases'][-1]['area_max']} of {h * w}", file=sys.stderr)
        torch.save(out, os.path.join(args.out, "automask.ref.pt"))
        with open(os.path.join(args.out, "cases.json"), "w") as f:
            json.dump(meta, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
