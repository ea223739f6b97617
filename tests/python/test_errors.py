"""numpy dtype / shape / contiguity rules and the mapping of C++ errors to Python
exceptions (ValueError for bad input, with the library's message). Needs no ../shared."""
import os
import subprocess
import sys

import numpy as np
import pytest

import nephroseg
from conftest import SAM_TINY, make_image


@pytest.fixture(scope="module")
def emb(random_sam):
    return random_sam.encode(make_image(37, 53))


def test_image_dtype_and_shape(random_sam):
    img = make_image(37, 53)
    with pytest.raises(ValueError, match=r"image must have dtype uint8 .* got float32"):
        random_sam.encode(img.astype(np.float32))
    with pytest.raises(ValueError, match=r"got shape \(37, 53, 4\)"):
        random_sam.encode(np.zeros((37, 53, 4), np.uint8))
    with pytest.raises(ValueError, match=r"image is empty"):
        random_sam.encode(np.zeros((0, 53, 3), np.uint8))
    with pytest.raises(ValueError, match="numpy array"):
        random_sam.encode([[1, 2, 3]])


def test_non_contiguous_image_is_copied_once(random_sam):
    big = make_image(37, 106)
    view = big[:, ::2]  # strided: not C-contiguous
    assert not view.flags["C_CONTIGUOUS"]
    a = random_sam.predict(random_sam.encode(view), points=[[20, 10]])
    b = random_sam.predict(random_sam.encode(np.ascontiguousarray(view)), points=[[20, 10]])
    np.testing.assert_array_equal(a.low_res_logits, b.low_res_logits)
    # Channels-last from a channels-first buffer (transposed view) too.
    chw = np.ascontiguousarray(view.transpose(2, 0, 1))
    c = random_sam.predict(random_sam.encode(chw.transpose(1, 2, 0)), points=[[20, 10]])
    np.testing.assert_array_equal(a.low_res_logits, c.low_res_logits)


def test_prompt_errors(random_sam, emb):
    with pytest.raises(ValueError, match=r"points must be an \(N, 2\) array"):
        random_sam.predict(emb, points=[[1, 2, 3]])
    with pytest.raises(ValueError, match="labels has 1 entries but points has 2"):
        random_sam.predict(emb, points=[[1, 2], [3, 4]], labels=[1])
    with pytest.raises(ValueError, match="box must be 4 numbers"):
        random_sam.predict(emb, box=[1, 2, 3])
    with pytest.raises(ValueError, match="mask_input must have dtype float32"):
        random_sam.predict(emb, mask_input=np.zeros((1, 40, 40), np.float64))
    with pytest.raises(ValueError, match="not finite"):
        random_sam.predict(emb, points=[[np.nan, 2]])
    # Library checks (nephroseg::Error) arrive as ValueError with the library's message.
    with pytest.raises(ValueError) as e:
        random_sam.predict(emb)
    assert "prompt" in str(e.value)
    with pytest.raises(ValueError) as e:
        random_sam.predict(emb, points=[[500, 10]])
    assert "500" in str(e.value) or "inside" in str(e.value)
    with pytest.raises(ValueError):
        random_sam.predict(emb, mask_input=np.zeros((1, 7, 7), np.float32))


def test_load_errors(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(ValueError, match="nope.pth"):
        nephroseg.Sam.load(str(missing), config=SAM_TINY)
    with pytest.raises(ValueError, match="vit_q"):
        nephroseg.Sam.random(model_type="vit_q")
    with pytest.raises(ValueError, match="encoder_depht"):
        nephroseg.Sam.random(config=dict(SAM_TINY, encoder_depht=2))
    with pytest.raises(ValueError, match="dict or the path"):
        nephroseg.Sam.random(config=3)


def test_masks_and_metrics_errors():
    a = np.zeros((10, 12), bool)
    with pytest.raises(ValueError, match=r"pred is 10x12 but truth is 10x11"):
        nephroseg.metrics(a, np.zeros((10, 11), bool))
    with pytest.raises(ValueError, match="dtype bool or uint8"):
        nephroseg.metrics(a.astype(np.float32), a)
    with pytest.raises(ValueError, match="2-D"):
        nephroseg.metrics(np.zeros((2, 10, 12), bool), a)
    with pytest.raises(ValueError, match="nm_per_pixel"):
        nephroseg.measure_thickness(a, 0.0)
    with pytest.raises(ValueError, match="empty"):
        nephroseg.measure_thickness(a, 2.0)


def test_config_round_trip(random_sam):
    c = random_sam.config
    assert c["img_size"] == 160 and c["encoder_depth"] == 4
    again = nephroseg.Sam.random(config=c, seed=3)
    img = make_image(20, 30)
    np.testing.assert_array_equal(random_sam.encode(img).embedding, again.encode(img).embedding)


def test_threads_setting():
    old = nephroseg.get_num_threads()
    assert nephroseg.set_num_threads(2) == 2 and nephroseg.get_num_threads() == 2
    nephroseg.set_num_threads(old)
    assert nephroseg.get_num_threads() == old


def _import_report(env):
    """Imports nephroseg in a fresh interpreter (OpenBLAS picks its kernels at load time)."""
    code = ("import warnings, nephroseg\n"
            "print(nephroseg.openblas_kernel()); print(nephroseg.better_openblas_kernel())")
    proc = subprocess.run([sys.executable, "-W", "always", "-c", code], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    kernel, better = (proc.stdout.splitlines() + ["", ""])[:2]
    return kernel, better, proc.stderr


def test_generic_openblas_kernels_are_reported_and_the_named_fix_works():
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    kernel, better, stderr = _import_report(env)
    if not kernel:
        pytest.skip("OpenBLAS is not the BLAS of this process")
    if not better:
        assert "OPENBLAS_CORETYPE" not in stderr
        pytest.skip(f"OpenBLAS chose '{kernel}' itself, an AVX2-class kernel set: nothing to fix")
    assert f"generic '{kernel}' kernels" in stderr and f"OPENBLAS_CORETYPE={better}" in stderr
    fixed_kernel, fixed_better, fixed_stderr = _import_report({**env, "OPENBLAS_CORETYPE": better})
    assert fixed_kernel.lower() == better.lower() and fixed_better == ""
    assert "OPENBLAS_CORETYPE" not in fixed_stderr
