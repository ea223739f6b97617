"""GbmSeg / gbmseg_batch: the same points, prompt stages and masks as `nephroseg gbmseg`
on the golden tiny DINOv2 + SAM, and reference features reusable across objects."""
import json
import pathlib

import numpy as np
import pytest

import nephroseg
from conftest import run_cli

SIZE = 140  # working size S: a 10 x 10 grid of 14-pixel patches


def band(seed, shift, h=150, w=130):
    """A TEM-like grey image with a dark curved membrane band and its 0/255 mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    centre = 0.45 * h + shift + 12 * np.sin(xx / 19.0)
    mask = np.abs(yy - centre) < 17
    grey = 170 - 90 * mask + rng.normal(0, 10, (h, w))
    img = np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    return img, (mask * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def models(golden):
    dino = nephroseg.Dinov2.load(str(golden / "dinov2_tiny.pth"), config=str(golden / "dinov2_tiny.json"))
    sam = nephroseg.Sam.load(str(golden / "sam_tiny.pth"), config=str(golden / "sam_tiny.json"))
    return dino, sam


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("gbmseg")
    ref_img, ref_mask = band(1, 0)
    nephroseg.write_image(str(d / "ref.png"), ref_img)
    nephroseg.write_image(str(d / "ref_mask.png"), ref_mask)
    (d / "targets").mkdir()
    for i, shift in enumerate([6, -9]):
        nephroseg.write_image(str(d / "targets" / f"t{i}.png"), band(10 + i, shift)[0])
    return d


@pytest.fixture(scope="module")
def cli_out(cli, golden, data):
    out = data / "cli_out"
    run_cli(cli, "gbmseg", "--dinov2-checkpoint", golden / "dinov2_tiny.pth",
            "--dinov2-config", golden / "dinov2_tiny.json", "--sam-checkpoint", golden / "sam_tiny.pth",
            "--sam-config", golden / "sam_tiny.json", "--reference-image", data / "ref.png",
            "--reference-mask", data / "ref_mask.png", "--target", data / "targets", "--out", out,
            "--size", SIZE)
    return out


STAGES = ["ref_fg_idx", "ref_bg_idx", "fwd_fg_argmin", "fwd_bg_argmin", "fwd_fg_pts", "bwd_pos_pts",
          "bwd_neg_pts", "pts_pos_initial", "pts_neg_initial", "ape_pos_sparse", "ape_neg_exclusive",
          "ape_neg_sparse", "final_pos", "final_neg"]


def check_same_as_cli(result, record):
    seg = record["segmenter_prompts"]
    np.testing.assert_array_equal(result["points"], np.array(seg["points"], np.float32).reshape(-1, 2))
    np.testing.assert_array_equal(result["labels"], np.array(seg["labels"], np.int32))
    for key in STAGES:
        expected = np.array(record["stages"][key], dtype=np.int64)
        got = result["prompts"][key].astype(np.int64)
        np.testing.assert_array_equal(got.reshape(expected.shape), expected, err_msg=key)


def test_python_pipeline_equals_cli(models, data, cli_out):
    dino, sam = models
    g = nephroseg.GbmSeg(dino, sam, options={"size": SIZE})
    g.set_reference(nephroseg.read_image(str(data / "ref.png")), nephroseg.read_image_raw(str(data / "ref_mask.png")))
    assert g.reference_features.shape == ((SIZE // 14) ** 2, dino.config["embed_dim"])
    for name in ["t0", "t1"]:
        record = json.loads((cli_out / f"{name}.prompts.json").read_text())
        r = g.segment(nephroseg.read_image(str(data / "targets" / f"{name}.png")))
        assert len(r["prompts"]["ref_fg_idx"]) > 0, "the test reference must have fg patches"
        check_same_as_cli(r, record)
        assert r["mask"].shape == (150, 130) and r["mask"].dtype == np.uint8
        np.testing.assert_array_equal(r["mask"], nephroseg.read_mask(str(cli_out / f"{name}.png")))


def test_reference_features_reused(models, data, cli_out):
    dino, sam = models
    a = nephroseg.GbmSeg(dino, sam, options={"size": SIZE})
    a.set_reference(nephroseg.read_image(str(data / "ref.png")), nephroseg.read_image_raw(str(data / "ref_mask.png")))
    b = nephroseg.GbmSeg(dino, sam, options={"size": SIZE})
    b.set_reference_working(a.reference_image_working, a.reference_mask_working, a.reference_features)
    target = nephroseg.read_image(str(data / "targets" / "t0.png"))
    ra, rb = a.segment(target), b.segment(target)
    np.testing.assert_array_equal(ra["points"], rb["points"])
    np.testing.assert_array_equal(ra["mask"], rb["mask"])


def test_batch_equals_cli(models, data, cli_out, golden, tmp_path):
    dino, sam = models
    seen = []
    res = nephroseg.gbmseg_batch(str(data / "ref.png"), str(data / "ref_mask.png"), str(data / "targets"),
                                 str(tmp_path / "a"), features=dino, segmenter=sam, options={"size": SIZE},
                                 progress=lambda i, n, rec: seen.append((i, n, rec["status"])))
    assert res["segmented"] == 2 and res["failed"] == 0
    assert seen == [(0, 2, "ok"), (1, 2, "ok")]
    # The same through backend kinds built by the library from the files.
    res2 = nephroseg.gbmseg_batch(str(data / "ref.png"), str(data / "ref_mask.png"), str(data / "targets"),
                                  str(tmp_path / "b"), dinov2_checkpoint=str(golden / "dinov2_tiny.pth"),
                                  dinov2_config=str(golden / "dinov2_tiny.json"),
                                  sam_checkpoint=str(golden / "sam_tiny.pth"),
                                  sam_config=str(golden / "sam_tiny.json"), options={"size": SIZE})
    assert res2["segmented"] == 2
    for out in [tmp_path / "a", tmp_path / "b"]:
        for name in ["t0", "t1"]:
            got = json.loads((out / f"{name}.prompts.json").read_text())
            want = json.loads((cli_out / f"{name}.prompts.json").read_text())
            assert got["segmenter_prompts"]["points"] == want["segmenter_prompts"]["points"]
            assert got["stages"]["final_neg"] == want["stages"]["final_neg"]
            np.testing.assert_array_equal(nephroseg.read_mask(str(out / f"{name}.png")),
                                          nephroseg.read_mask(str(cli_out / f"{name}.png")))
    # Resume: a second run skips both targets.
    again = nephroseg.gbmseg_batch(str(data / "ref.png"), str(data / "ref_mask.png"), str(data / "targets"),
                                   str(tmp_path / "a"), features=dino, segmenter=sam, options={"size": SIZE})
    assert again["skipped"] == 2 and again["segmented"] == 0


def test_bad_options(models):
    dino, sam = models
    with pytest.raises(ValueError, match="unknown key 'sise'"):
        nephroseg.GbmSeg(dino, sam, options={"sise": 140})
    with pytest.raises(ValueError, match="multiple of the patch size"):
        nephroseg.GbmSeg(dino, sam, options={"size": 141})
    with pytest.raises(ValueError, match="preset"):
        nephroseg.GbmSeg(dino, sam, preset="nope")
    g = nephroseg.GbmSeg(dino, sam, options={"size": SIZE})
    with pytest.raises(ValueError, match="set_reference"):
        g.segment(np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(ValueError, match="features must be"):
        nephroseg.GbmSeg(3, sam)


def test_batch_measures_and_pools_references(data, tmp_path):
    # Weight-free backends: no model files needed. The phantoms are PNG (no calibration).
    ref, ref_mask, targets = str(data / "ref.png"), str(data / "ref_mask.png"), str(data / "targets")
    with pytest.raises(ValueError, match="no pixel size for"):
        nephroseg.gbmseg_batch(ref, ref_mask, targets, str(tmp_path / "x"), features="classical",
                               segmenter="classical", measure="on")
    assert not (tmp_path / "x").exists()
    res = nephroseg.gbmseg_batch(ref, ref_mask, targets, str(tmp_path / "m"), features="classical",
                                 segmenter="classical", measure="on", nm_per_pixel="10",
                                 more_references=[(ref, ref_mask)])
    assert res["references"] == 2 and res["segmented"] == 2
    for rec in res["targets"]:
        th = rec["thickness"]
        assert th["calibration_source"] == "option" and th["nm_per_pixel"] == 10
        assert th["class"] in ("thin", "normal", "thick") and th["n_intercepts"] > 0
        assert th["direct_median_nm"] > 0
        assert (tmp_path / "m" / f"{rec['name']}.thickness.png").is_file()
    assert pathlib.Path(res["report_html"]).is_file()
    with pytest.raises(ValueError, match="unknown measure mode .yes. .expected one of: auto, on, off."):
        nephroseg.gbmseg_batch(ref, ref_mask, targets, str(tmp_path / "y"), features="classical",
                               segmenter="classical", measure="yes")
