"""Runs pytest with the OpenBLAS kernels the CLI would run (CTest's command for each suite).

OpenBLAS picks its kernels once, when it is loaded; on a CPU model it does not know it
falls back to generic ones, and the CLI then re-runs itself with OPENBLAS_CORETYPE set
(core/threads.h). Tests that compare Python's results with the CLI's byte for byte need
the same kernels in both, so this asks a throw-away interpreter which kernel set the CLI
would pick and starts pytest with it. A value the caller set is kept.
"""
import os
import subprocess
import sys

if "OPENBLAS_CORETYPE" not in os.environ:
    probe = subprocess.run(
        [sys.executable, "-W", "ignore", "-c",
         "import nephroseg; print(nephroseg.better_openblas_kernel())"],
        capture_output=True, text=True, timeout=120)
    better = probe.stdout.strip() if probe.returncode == 0 else ""
    if better:
        os.environ["OPENBLAS_CORETYPE"] = better
os.execv(sys.executable, [sys.executable, "-m", "pytest", *sys.argv[1:]])
