#!/usr/bin/env bash
# Installs every Debian 12 package nephroseg needs to build, test and run.
# Usage: scripts/setup.sh            (as root, or with sudo available)
set -euo pipefail

packages=(
  # toolchain
  g++ cmake ninja-build ccache pkg-config
  # tensor engine: Debian's LibTorch (CPU) and a fast BLAS behind it. The default
  # reference BLAS is ~50x slower: install OpenBLAS (OpenMP flavour) explicitly.
  libtorch-dev libgloo-dev libopenblas0-openmp
  # images, CLI, JSON, TIFF
  libopencv-dev libcli11-dev nlohmann-json3-dev libtiff-dev libpng-dev
  # whole slides (SVS, NDPI, MRXS, ...)
  libopenslide-dev
  # tests
  libgtest-dev libgmock-dev
  # tests only: headless browser for the HTML report test, Python's torch for the
  # independent checks against files written by torch.save, scikit-image for MedSAM's
  # resize
  chromium python3-torch python3-numpy python3-skimage
  # tests only: a single-node Slurm cluster (scripts/slurm/local_cluster.sh)
  slurm-wlm munge
  # fuzzing (fuzz/run_smoke.sh): clang with libFuzzer, ASan and UBSan runtimes
  clang-14 libclang-rt-14-dev
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
else
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -q "${missing[@]}"
fi

# libblas.so.3 must resolve to OpenBLAS, not the reference implementation.
if command -v update-alternatives >/dev/null; then
  blas=$(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | awk '/^Value:/ {print $2}')
  case "$blas" in
    *openblas*) ;;
    "") ;;
    *) echo "setup: switching libblas.so.3 to OpenBLAS (was $blas)"
       alt=$(update-alternatives --list libblas.so.3-x86_64-linux-gnu | grep openblas | head -n1)
       [ -n "$alt" ] && $SUDO update-alternatives --set libblas.so.3-x86_64-linux-gnu "$alt" ;;
  esac
fi
