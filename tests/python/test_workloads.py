"""The batch workloads from Python: the same options, defaults and files as the CLI.

- gbmseg_batch(precision=...) runs the model backends in that precision (run.json says so);
- each workload's keyword defaults equal the defaults the CLI's --help shows (both come from
  the workloads' options structs in C++);
- sam_batch, glomsam_predict and run_slides write what `nephroseg sam`, `glomsam predict`
  and `slide` write;
- the .pyi stubs name every function and argument the module has.
"""
import ast
import json
import pathlib
import re
import subprocess

import numpy as np
import pytest

import nephroseg
from conftest import run_cli, shared_dir

STUBS = pathlib.Path(nephroseg.__file__).with_name("__init__.pyi")


def signature_args(func):
    """[(name, default text or None)] from a pybind11 function's signature line."""
    first = func.__doc__.splitlines()[0]
    text = first[first.index("(") + 1:first.rindex(")")]
    parts, depth, cur = [], 0, ""
    for ch in text:  # split at the top-level commas (types hold commas inside brackets)
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
            continue
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        cur += ch
    parts.append(cur.strip())
    out = []
    for p in parts:
        if p == "*" or not p:
            continue
        name, _, rest = p.partition(":")
        default = rest.split(" = ", 1)[1].strip().strip("'") if " = " in rest else None
        out.append((name.strip(), default))
    return out


def signature_defaults(func):
    return {n: d for n, d in signature_args(func) if d is not None}


def signature_names(func):
    return [n for n, _ in signature_args(func)]


def cli_help_defaults(cli, *command):
    """{--option: default} from `nephroseg COMMAND --help` (CLI11 prints `--opt TYPE=default`)."""
    r = subprocess.run([cli, *command, "--help"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return {m.group(1): m.group(2) for m in re.finditer(r"(--[\w-]+)(?:,[\w-]+)* \w+=(\S+)", r.stdout)}


# (python function, keyword, CLI command, CLI option): one or more defaults per workload.
DEFAULTS = [
    ("gbmseg_batch", "nm_per_pixel", ("gbmseg",), "--nm-per-pixel"),
    ("gbmseg_batch", "mask_resize", ("gbmseg",), "--mask-resize"),
    ("gbmseg_batch", "dinov2_type", ("gbmseg",), "--dinov2-type"),
    ("gbmseg_batch", "sam_type", ("gbmseg",), "--sam-type"),
    ("gbmseg_batch", "features", ("gbmseg",), "--features"),
    ("sam_batch", "model_type", ("sam",), "--model-type"),
    ("glomsam_predict", "threshold", ("glomsam", "predict"), "--threshold"),
    ("glomsam_predict", "overlap", ("glomsam", "predict"), "--overlap"),
    ("glomsam_predict", "config", ("glomsam", "predict"), "--model-config"),
    ("run_slide", "halo", ("slide",), "--halo"),
    ("run_slides", "segmenter", ("slide",), "--segmenter"),
    ("run_slides", "level", ("slide",), "--level"),
]


@pytest.mark.parametrize("func,kwarg,command,option", DEFAULTS)
def test_python_defaults_equal_cli_help(cli, func, kwarg, command, option):
    py_default = signature_defaults(getattr(nephroseg, func))[kwarg]
    cli_default = cli_help_defaults(cli, *command)[option]
    assert float(py_default) == float(cli_default) if re.fullmatch(r"-?[\d.]+", py_default) \
        else py_default == cli_default, (func, kwarg, py_default, option, cli_default)


def test_slide_tile_default_comes_from_the_model_in_python_too():
    # The CLI derives the tile from the model unless --tile is given; Python's run_slide
    # has tile=None for the same rule (it used to be a fixed 1024).
    assert signature_defaults(nephroseg.run_slide)["tile"] == "None"
    assert signature_defaults(nephroseg.run_slides)["tile"] == "None"


def stub_functions():
    tree = ast.parse(STUBS.read_text())
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}, \
           {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}


def test_stubs_name_every_public_function_with_its_arguments():
    funcs, classes = stub_functions()
    for name in nephroseg.__all__:
        assert name in funcs or name in classes, f"{name} is exported but has no stub"
    for name, node in funcs.items():
        assert hasattr(nephroseg, name), f"stub {name} is not in the module"
        stub_args = [a.arg for a in node.args.args + node.args.kwonlyargs]
        assert stub_args == signature_names(getattr(nephroseg, name)), name
    for name, node in classes.items():
        cls = getattr(nephroseg, name)
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and not item.name.startswith("__"):
                assert hasattr(cls, item.name), f"stub {name}.{item.name} is not in the module"


def test_stub_check_fails_for_a_wrong_stub():
    # The check above must be able to fail: a made-up argument list differs.
    assert ["reference_image", "nonsense"] != signature_names(nephroseg.gbmseg_batch)[:2]


def native_bf16():
    try:
        return nephroseg.Sam.random(config=_tiny_sam_config(), precision="bf16").precision == "bf16"
    except ValueError:
        return False


def _tiny_sam_config():
    from conftest import SAM_TINY
    return dict(SAM_TINY)


def gbmseg_data(tmp_path):
    d = shared_dir() / "data" / "gbmseg_sample"
    if not d.is_dir():
        pytest.skip(f"{d} not found: ../shared is absent")
    ref = sorted((d / "reference_image").glob("*.png"))[0]
    mask = sorted((d / "reference_mask").glob("*.png"))[0]
    return str(ref), str(mask), str(ref)


def test_gbmseg_batch_runs_the_precision_asked_for(golden, tmp_path):
    if not native_bf16():
        pytest.skip("this CPU has no native bf16 (avx512_bf16 / AMX-BF16): bf16 is refused unless forced")
    ref, mask, target = gbmseg_data(tmp_path)
    common = dict(dinov2_checkpoint=str(golden / "dinov2_tiny.pth"), dinov2_config=str(golden / "dinov2_tiny.json"),
                  sam_checkpoint=str(golden / "sam_tiny.pth"), sam_config=str(golden / "sam_tiny.json"),
                  options={"size": 112}, measure="off")
    bf16 = nephroseg.gbmseg_batch(ref, mask, target, str(tmp_path / "bf16"), precision="bf16", **common)
    fp32 = nephroseg.gbmseg_batch(ref, mask, target, str(tmp_path / "fp32"), **common)
    assert bf16["segmented"] == 1 and fp32["segmented"] == 1
    run_bf16 = json.loads((tmp_path / "bf16" / "run.json").read_text())
    run_fp32 = json.loads((tmp_path / "fp32" / "run.json").read_text())
    assert "bf16" in run_bf16["backends"]["features"] and "bf16" in run_bf16["backends"]["segmenter"]
    assert "bf16" not in run_fp32["backends"]["features"] and "bf16" not in run_fp32["backends"]["segmenter"]


def test_gbmseg_batch_refuses_an_unknown_precision(tmp_path):
    with pytest.raises(ValueError, match="precision"):
        nephroseg.gbmseg_batch("r.png", "m.png", "t.png", str(tmp_path), features="classical",
                               segmenter="classical", precision="fp8")


def test_sam_batch_writes_what_the_cli_writes(golden, cli, tmp_path):
    rng = np.random.default_rng(3)
    images = tmp_path / "images"
    images.mkdir()
    for name in ["a", "b"]:
        nephroseg.write_image(str(images / f"{name}.png"), rng.integers(0, 255, (90, 120, 3), dtype=np.uint8))
    model = ["--checkpoint", str(golden / "sam_tiny.pth"), "--model-config", str(golden / "sam_tiny.json")]
    run_cli(cli, "sam", *model, "--image", images, "--box", "10,12,80,70", "--point", "40,40,1",
            "--out", tmp_path / "cli")
    seen = []
    r = nephroseg.sam_batch([str(images)], str(tmp_path / "py"), checkpoint=str(golden / "sam_tiny.pth"),
                            model_config=str(golden / "sam_tiny.json"), box=[10, 12, 80, 70], points=[[40, 40, 1]],
                            progress=lambda i, n, name: seen.append((i, n, name)))
    assert r["segmented"] == 2 and r["inputs_total"] == 2 and seen == [(0, 2, "a"), (1, 2, "b")]
    for name in ["a", "b"]:
        np.testing.assert_array_equal(nephroseg.read_mask(str(tmp_path / "py" / name / "mask.png")),
                                      nephroseg.read_mask(str(tmp_path / "cli" / name / "mask.png")))
        got = json.loads((tmp_path / "py" / name / "result.json").read_text())
        want = json.loads((tmp_path / "cli" / name / "result.json").read_text())
        assert got["prompt"] == want["prompt"] and got["iou_predictions"] == want["iou_predictions"]
    again = nephroseg.sam_batch([str(images)], str(tmp_path / "py"), checkpoint=str(golden / "sam_tiny.pth"),
                                model_config=str(golden / "sam_tiny.json"), box=[10, 12, 80, 70], resume=True)
    assert again["skipped"] == 2 and again["segmented"] == 0


def test_glomsam_predict_writes_what_the_cli_writes(cli, tmp_path):
    ckpt = shared_dir() / "golden" / "glomsam" / "full_model.pth"
    img_dir = shared_dir() / "data" / "glomeruli" / "images"
    if not ckpt.is_file() or not img_dir.is_dir():
        pytest.skip("golden GlomSAM model or glomerulus images not found: ../shared is absent")
    image = str(sorted(img_dir.glob("*.png"))[0])
    run_cli(cli, "glomsam", "predict", "--checkpoint", ckpt, "--config", "tiny", "--image", image,
            "--out", tmp_path / "cli")
    r = nephroseg.glomsam_predict(str(ckpt), image, str(tmp_path / "py"), config="tiny")
    assert len(r["items"]) == 1 and r["items"][0]["objects"] >= 0
    stem = pathlib.Path(image).stem
    np.testing.assert_array_equal(nephroseg.read_mask(str(tmp_path / "py" / f"{stem}_mask.png")),
                                  nephroseg.read_mask(str(tmp_path / "cli" / f"{stem}_mask.png")))


def test_run_slide_refuses_a_folder_before_running_anything(tmp_path):
    (tmp_path / "slides").mkdir()
    with pytest.raises(ValueError, match="is a folder; use run_slides"):
        nephroseg.run_slide(str(tmp_path / "slides"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
