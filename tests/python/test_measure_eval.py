"""measure_thickness returns the numbers `nephroseg measure` writes (in nm); metrics()
matches hand-computed values. Needs no ../shared."""
import json

import numpy as np
import pytest

import nephroseg
from conftest import run_cli


def membrane(h=120, w=160, thickness=14):
    yy, xx = np.mgrid[0:h, 0:w]
    centre = 60 + 15 * np.sin(xx / 25.0)
    return np.abs(yy - centre) < thickness / 2


def test_thickness_equals_cli(cli, tmp_path):
    mask = membrane()
    nephroseg.write_mask(str(tmp_path / "gbm.png"), mask)
    run_cli(cli, "measure", "--mask", tmp_path / "gbm.png", "--nm-per-pixel", "2.5", "--out", tmp_path / "out")
    want = json.loads((tmp_path / "out" / "gbm_summary.json").read_text())
    got = nephroseg.measure_thickness(mask, 2.5, name="gbm")
    measurements = got.pop("measurements")
    want.pop("calibration", None)
    assert got == want
    n = len(measurements["width_nm"])
    assert n > 0 and len(measurements["excluded"]) == n and len(measurements["estimator"]) == n


def test_thickness_of_a_known_band():
    # A band 14 px thick at 2.5 nm/px, measured perpendicular to itself, is ~35 nm wide;
    # the sine curvature widens vertical chords but not the minimal chords measured.
    got = nephroseg.measure_thickness(membrane(thickness=14), 2.5)
    text = json.dumps(got, default=str)
    assert "nm" in text
    widths = got["measurements"]["width_nm"][~got["measurements"]["excluded"]]
    assert abs(np.median(widths) - 35.0) < 4.0


def test_metrics_hand_computed():
    pred = np.zeros((20, 20), bool)
    truth = np.zeros((20, 20), np.uint8)
    pred[0:10, 0:10] = True
    truth[0:10, 5:15] = 255
    m = nephroseg.metrics(pred, truth)
    # TP 50, FP 50, FN 50, TN 250.
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (50, 50, 50, 250)
    assert m["dice"] == pytest.approx(0.5)
    assert m["iou"] == pytest.approx(50 / 150)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5)
    assert m["accuracy"] == pytest.approx(300 / 400)
    assert m["hd95"] > 0
    same = nephroseg.metrics(pred, pred)
    assert same["dice"] == 1.0 and same["hd95"] == 0.0


def test_summarize():
    s = nephroseg.summarize([1.0, 2.0, 3.0, 4.0, float("nan")])
    assert s["n"] == 4 and s["n_nan"] == 1
    assert s["mean"] == pytest.approx(2.5) and s["median"] == pytest.approx(2.5)


def test_image_io_round_trip(tmp_path):
    img = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    nephroseg.write_image(str(tmp_path / "a.png"), img)
    np.testing.assert_array_equal(nephroseg.read_image(str(tmp_path / "a.png")), img)
    with pytest.raises(ValueError, match="nope.png"):
        nephroseg.read_image(str(tmp_path / "nope.png"))
