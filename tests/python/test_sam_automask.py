"""Sam.generate_masks: the same masks and records as `nephroseg sam --auto` (whose files
test_sam_automask_cli.cpp checks against the golden generators), the golden masks
themselves where torch can read them, and keyword defaults equal to the CLI's --help
defaults (both read sam::AutomaskOptions)."""
import json
import pathlib
import re
import subprocess

import numpy as np
import pytest

import nephroseg
from conftest import make_image, run_cli

GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "golden" / "automask"

# Every generator option: (Python keyword, CLI option).
OPTIONS = [
    ("points_per_side", "--points-per-side"),
    ("points_per_batch", "--points-per-batch"),
    ("pred_iou_thresh", "--pred-iou-thresh"),
    ("stability_score_thresh", "--stability-score-thresh"),
    ("stability_score_offset", "--stability-score-offset"),
    ("box_nms_thresh", "--box-nms-thresh"),
    ("crop_n_layers", "--crop-n-layers"),
    ("crop_nms_thresh", "--crop-nms-thresh"),
    ("crop_overlap_ratio", "--crop-overlap-ratio"),
    ("crop_n_points_downscale_factor", "--crop-n-points-downscale-factor"),
    ("min_mask_region_area", "--min-mask-region-area"),
    ("output_type", "--output-type"),
    ("include_image_edge", "--include-image-edge"),
]
RECORD_KEYS = {"segmentation", "area", "bbox", "predicted_iou", "point_coords", "stability_score", "crop_box"}


@pytest.fixture(scope="module")
def tiny_sam(golden):
    return nephroseg.Sam.load(str(golden / "sam_tiny.pth"), config=str(golden / "sam_tiny.json"))


def golden_case(name):
    for c in json.loads((GOLDEN / "cases.json").read_text())["cases"]:
        if c["name"] == name:
            return c
    raise KeyError(name)


def cli_args(options):
    args = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else flag + "=false")
        else:
            args += [flag, str(value)]
    return args


@pytest.mark.parametrize("case", ["synth_single", "small_smallest_crops"])
def test_python_equals_cli(cli, golden, tiny_sam, tmp_path, case):
    options = golden_case(case)["options"]
    image = make_image(45, 61, seed=5)
    img_path = tmp_path / "img.png"
    nephroseg.write_image(str(img_path), image)
    out = tmp_path / "out"
    run_cli(cli, "sam", "--checkpoint", golden / "sam_tiny.pth", "--model-config", golden / "sam_tiny.json",
            "--image", img_path, "--auto", *cli_args(options), "--out", out)
    masks = tiny_sam.generate_masks(image, **options)

    records = json.loads((out / "masks.json").read_text())
    assert len(masks) > 0, "the case gives no mask on this image: the comparison would be empty"
    assert len(masks) == len(records)
    for k, (m, r) in enumerate(zip(masks, records)):
        assert set(m) == RECORD_KEYS
        seg = m["segmentation"]
        assert seg.dtype == np.bool_ and seg.shape == (45, 61)
        np.testing.assert_array_equal(nephroseg.read_mask(str(out / r["file"])) > 0, seg)
        assert m["area"] == r["area"] == int(seg.sum())
        assert m["bbox"] == r["bbox"] and m["crop_box"] == r["crop_box"]
        assert m["point_coords"] == r["point_coords"] and len(m["point_coords"]) == 1
        assert m["predicted_iou"] == pytest.approx(r["predicted_iou"], abs=1e-6)
        assert m["stability_score"] == pytest.approx(r["stability_score"], abs=1e-6)


def test_golden_masks(golden, tiny_sam):
    torch = pytest.importorskip("torch", reason="python3-torch is needed to read automask.ref.pt")
    ref = torch.load(str(GOLDEN / "automask.ref.pt"))
    c = golden_case("synth_largest")
    image = ref["image." + c["image"]].numpy()
    masks = tiny_sam.generate_masks(image, **c["options"])
    h, w = c["image_hw"]
    packed = ref[c["name"] + ".masks_packed"].numpy()
    expected = np.unpackbits(packed, axis=1)[:, :h * w].reshape(-1, h, w).astype(bool)
    assert len(masks) == len(expected) == c["masks"]
    for m, e, iou in zip(masks, expected, ref[c["name"] + ".predicted_iou"].numpy()):
        assert np.count_nonzero(m["segmentation"] != e) <= 2  # the README's tolerance
        assert m["predicted_iou"] == pytest.approx(float(iou), abs=1e-5)


def help_defaults(cli):
    """{--option: default text} of the automask options in `nephroseg sam --help`."""
    r = subprocess.run([cli, "sam", "--help"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = {}
    for _, option in OPTIONS:
        # `--opt TYPE=default` (TYPE may list choices: `TEXT:{a,b}`); a flag says "(default: x)".
        # A choice default may hold spaces (`TEXT:{a b,c}=a b`, then two spaces or a line
        # end); others are one word (`FLOAT=0.7 help`).
        start = r"^\s*" + re.escape(option) + " "
        m = re.search(start + r"[^\n]*\(default: (\w+)\)", r.stdout, re.M) or \
            re.search(start + r"[A-Z]+:\{[^}]*\}=(.*?)(?:  |\n)", r.stdout, re.M) or \
            re.search(start + r"[A-Z]+=(\S+)", r.stdout, re.M)
        out[option] = m.group(1).strip() if m else None
    return out


def signature_defaults():
    first = nephroseg.Sam.generate_masks.__doc__.splitlines()[0]
    return {m.group(1): m.group(2) for m in re.finditer(r"(\w+): [\w.]+ = ('[^']*'|[^,)]+)", first)}


def test_python_defaults_equal_cli_help(cli):
    py = signature_defaults()
    cli_defaults = help_defaults(cli)
    for kwarg, option in OPTIONS:
        p, c = py.get(kwarg), cli_defaults[option]
        assert p is not None and c is not None, (kwarg, p, option, c)
        p = p.strip("'")
        if p in ("True", "False"):
            assert p.lower() == c.lower(), (kwarg, p, option, c)
        elif re.fullmatch(r"-?[\d.e+-]+", p):
            assert float(p) == pytest.approx(float(c), rel=1e-5), (kwarg, p, option, c)
        else:
            assert p == c, (kwarg, p, option, c)


def test_bad_option_names_the_field(tiny_sam):
    with pytest.raises(ValueError, match=r"points_per_side must lie in \[1, 256\]"):
        tiny_sam.generate_masks(make_image(), points_per_side=0)
    with pytest.raises(ValueError, match="output_type: unknown automask output type 'Multi-mask'"):
        tiny_sam.generate_masks(make_image(), output_type="Multi-mask")
