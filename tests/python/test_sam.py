"""Sam: parity of the Python API with `nephroseg sam` on the golden tiny SAM (same
masks, same logits), and the embedding reuse contract."""
import numpy as np
import pytest

import nephroseg
from conftest import make_image, run_cli


@pytest.fixture(scope="module")
def tiny_sam(golden):
    return nephroseg.Sam.load(str(golden / "sam_tiny.pth"), config=str(golden / "sam_tiny.json"))


def cli_sam(cli, golden, tmp_path, image, *prompt_args):
    img_path = tmp_path / "img.png"
    nephroseg.write_image(str(img_path), image)
    out = tmp_path / "out"
    run_cli(cli, "sam", "--checkpoint", golden / "sam_tiny.pth", "--model-config", golden / "sam_tiny.json",
            "--image", img_path, "--out", out, *prompt_args)
    return out


@pytest.mark.parametrize("case", ["points_multimask", "box_and_point"])
def test_python_equals_cli(cli, golden, tiny_sam, tmp_path, case):
    image = make_image(37, 53)
    if case == "points_multimask":
        args = ["--point", "30,15,1", "--point", "10,30,0", "--multimask"]
        kwargs = dict(points=[[30, 15], [10, 30]], labels=[1, 0], multimask=True)
    else:
        args = ["--box", "20,5,50,30", "--point", "32,14,1"]
        kwargs = dict(box=[20, 5, 50, 30], points=[[32, 14]], labels=[1])
    out = cli_sam(cli, golden, tmp_path, image, *args)
    r = tiny_sam.predict(tiny_sam.encode(image), **kwargs)

    cli_logits = np.load(out / "low_res_logits.npy")
    assert cli_logits.dtype == np.float32 and r.low_res_logits.dtype == np.float32
    assert cli_logits.shape == r.low_res_logits.shape
    # Same code, same thread count: only summation-order noise could differ.
    assert np.max(np.abs(cli_logits - r.low_res_logits)) <= 1e-5
    cli_mask = nephroseg.read_mask(str(out / "mask.png"))
    assert cli_mask.shape == (37, 53)
    np.testing.assert_array_equal(cli_mask > 0, r.masks[r.best_index])
    n = r.masks.shape[0]
    assert n == (3 if kwargs.get("multimask") else 1)
    for k in range(n):
        mk = nephroseg.read_mask(str(out / "masks" / f"mask_{k}.png"))
        np.testing.assert_array_equal(mk > 0, r.masks[k])


def test_result_arrays(tiny_sam):
    image = make_image(37, 53)
    emb = tiny_sam.encode(image)
    assert emb.original_size == (37, 53)
    assert emb.embedding.shape == (1, 64, 10, 10) and emb.embedding.dtype == np.float32
    r = tiny_sam.predict(emb, points=[[30, 15]])
    assert r.masks.dtype == np.bool_ and r.masks.shape == (1, 37, 53)
    assert r.iou.shape == (1,)
    np.testing.assert_array_equal(r.masks, r.mask_logits > tiny_sam.config["mask_threshold"])
    # A previous result's logits as the mask prompt (the SamPredictor loop).
    r2 = tiny_sam.predict(emb, points=[[30, 15]], mask_input=r.low_res_logits[0][None])
    assert r2.low_res_logits.shape == (1, 40, 40)
    assert not np.array_equal(r2.low_res_logits, r.low_res_logits)
    # Arrays outlive the result object (they own a reference to the C++ buffer).
    masks = r.masks
    del r
    assert masks.shape == (1, 37, 53) and masks.any() in (True, False)


@pytest.mark.parametrize("prompt", ["p0_single_point_multimask", "p1_pos_neg_points", "p2_box"])
def test_golden_reference_outputs(golden, tiny_sam, prompt):
    """The Python path reproduces segment-anything's own outputs stored in sam_tiny.ref.pt
    (expected values from the reference code, not from nephroseg). Tolerance: the golden
    README's 'independent fp32 port' bound (atol 1e-3; masks equal where |logit| > 1e-3)."""
    torch = pytest.importorskip("torch", reason="python3-torch is needed to read sam_tiny.ref.pt")
    ref = {k: v.numpy() for k, v in torch.load(str(golden / "sam_tiny.ref.pt")).items()}
    emb = tiny_sam.encode(ref["image_rgb_u8"])
    assert np.max(np.abs(ref["image_embeddings"] - emb.embedding)) < 1e-3
    kw = {"multimask": bool(ref[f"{prompt}.in.multimask_output"])}
    if f"{prompt}.in.point_coords" in ref:
        kw["points"] = ref[f"{prompt}.in.point_coords"]
        kw["labels"] = ref[f"{prompt}.in.point_labels"]
    if f"{prompt}.in.box" in ref:
        kw["box"] = ref[f"{prompt}.in.box"].reshape(-1)
    r = tiny_sam.predict(emb, **kw)
    expected = ref[f"{prompt}.low_res_logits"].reshape(r.low_res_logits.shape)
    assert np.max(np.abs(expected - r.low_res_logits)) < 1e-3
    ref_logits = ref[f"{prompt}.mask_logits"].reshape(r.mask_logits.shape)
    ref_masks = ref[f"{prompt}.masks"].reshape(r.masks.shape)
    sure = np.abs(ref_logits) > 1e-3
    np.testing.assert_array_equal(ref_masks[sure], r.masks[sure])


def test_precision_keyword(golden):
    """precision= converts the encoder; the embedding stays float32 and close to fp32."""
    fp32 = nephroseg.Sam.load(str(golden / "sam_tiny.pth"), config=str(golden / "sam_tiny.json"))
    assert fp32.precision == "fp32"
    image = make_image(37, 53)
    e32 = np.asarray(fp32.encode(image).embedding)
    q = nephroseg.Sam.load(str(golden / "sam_tiny.pth"), config=str(golden / "sam_tiny.json"),
                           precision="int8", force_precision=True)  # refused without VNNI
    assert q.precision == "int8"
    e8 = np.asarray(q.encode(image).embedding)
    assert e8.dtype == np.float32
    rel = np.linalg.norm(e8 - e32) / np.linalg.norm(e32)
    assert 0 < rel < 0.05
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        nephroseg.Sam.load(str(golden / "sam_tiny.pth"), config=str(golden / "sam_tiny.json"),
                           precision="fp16")
    auto = nephroseg.Sam.random(config=str(golden / "sam_tiny.json"), precision="auto")
    assert auto.precision in ("fp32", "bf16")
