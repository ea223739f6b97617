"""Shared fixtures of the nephroseg pytest suites (run by CTest, see CMakeLists.txt).

Golden models come from ../shared/golden (or $NEPHROSEG_SHARED); tests that need them
skip with a message when it is absent. The CLI binary of the same build is
$NEPHROSEG_CLI.
"""
import os
import pathlib
import subprocess

import numpy as np
import pytest

import nephroseg

# The tiny SAM of golden/models/sam_tiny.json, for tests that need no weights file.
SAM_TINY = {
    "img_size": 160, "patch_size": 16, "encoder_embed_dim": 48, "encoder_depth": 4,
    "encoder_num_heads": 3, "encoder_global_attn_indexes": [1, 3], "window_size": 4,
    "prompt_embed_dim": 64, "mask_in_chans": 16, "decoder_depth": 2, "decoder_num_heads": 8,
    "decoder_mlp_dim": 128, "iou_head_hidden_dim": 64,
}


def shared_dir():
    return pathlib.Path(os.environ.get("NEPHROSEG_SHARED")
                        or os.environ.get("NEPHROSEG_SHARED_DIR_DEFAULT")
                        or pathlib.Path(__file__).resolve().parents[2] / ".." / "shared")


@pytest.fixture(scope="session")
def golden():
    d = shared_dir() / "golden" / "models"
    if not (d / "sam_tiny.pth").is_file() or not (d / "dinov2_tiny.pth").is_file():
        pytest.skip(f"golden models not found in {d}: ../shared is absent (set NEPHROSEG_SHARED)")
    return d


@pytest.fixture(scope="session")
def cli():
    p = os.environ.get("NEPHROSEG_CLI", "")
    if not p or not os.access(p, os.X_OK):
        pytest.skip("NEPHROSEG_CLI does not name the nephroseg binary (run through ctest)")
    return p


def run_cli(cli, *args):
    """Runs the CLI single-threaded (the Python side sets 1 thread too) and checks rc 0."""
    r = subprocess.run([cli, "--threads", "1", "--quiet", *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, f"nephroseg {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stderr}"
    return r


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    nephroseg.set_num_threads(1)


@pytest.fixture(scope="session")
def random_sam():
    return nephroseg.Sam.random(config=SAM_TINY, seed=3)


def make_image(h=37, w=53, seed=0):
    """A deterministic RGB image with structure (a bright disc on smooth noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 60 + 40 * np.sin(xx / 5.0) + 30 * np.cos(yy / 7.0)
    disc = ((xx - w * 0.6) ** 2 + (yy - h * 0.4) ** 2) < (min(h, w) * 0.25) ** 2
    img = np.stack([base + 120 * disc + rng.normal(0, 8, (h, w)) for _ in range(3)], axis=-1)
    return np.clip(img, 0, 255).astype(np.uint8)
