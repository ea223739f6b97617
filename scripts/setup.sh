#!/usr/bin/env bash
# Installs every Debian 12 package nephroseg needs to build, test and run.
# Usage: scripts/setup.sh            (as root, or with sudo available)
#        scripts/setup.sh --user-install PREFIX
#            then builds (scripts/build.sh) and installs into PREFIX: PREFIX/bin/nephroseg,
#            the libraries, headers and CMake package config, and the Python module in
#            PREFIX/lib/python3/dist-packages (docs/python.md)
set -euo pipefail

user_install=""
if [ "${1:-}" = "--user-install" ]; then
  [ -n "${2:-}" ] || { echo "setup: --user-install needs a PREFIX folder" >&2; exit 2; }
  user_install=$2
elif [ -n "${1:-}" ]; then
  echo "setup: unknown option '$1' (usage: scripts/setup.sh [--user-install PREFIX])" >&2; exit 2
fi

packages=(
  # toolchain
  g++ cmake ninja-build ccache pkg-config
  # tensor engine: Debian's LibTorch (CPU) and a fast BLAS behind it. The default
  # reference BLAS is ~50x slower: install OpenBLAS (OpenMP flavour) explicitly.
  libtorch-dev libgloo-dev libopenblas0-openmp
  # images, CLI, JSON, TIFF
  libopencv-dev libcli11-dev nlohmann-json3-dev libtiff-dev libpng-dev
  # XML (OME-XML in TIFF descriptions and slides)
  libpugixml-dev
  # the local HTTP server (`nephroseg serve`) and its workbench page, which embeds
  # Debian's Leaflet at build time (zlib for the masks' zip export)
  libcpp-httplib-dev libjs-leaflet zlib1g-dev
  # whole slides (SVS, NDPI, MRXS, ...)
  libopenslide-dev
  # tests
  libgtest-dev libgmock-dev
  # tests only: headless browser for the HTML report test, Python's torch for the
  # independent checks against files written by torch.save, scikit-image for MedSAM's
  # resize
  chromium python3-torch python3-numpy python3-skimage
  # tests only: the workbench's browser test drives chromium through WebDriver
  chromium-driver python3-selenium
  # (not installed: python3-torchvision python3-opencv, needed only to regenerate the
  # automask golden files with tests/golden/automask/make_golden.py; no test runs it)
  # tests only: a single-node Slurm cluster (scripts/slurm/local_cluster.sh)
  slurm-wlm munge
  # Python module (python/, docs/python.md) and its pytest suites
  pybind11-dev python3-pybind11 python3-dev python3-pytest
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

if [ -n "$user_install" ]; then
  mkdir -p "$user_install"
  prefix=$(cd "$user_install" && pwd)
  cd "$(dirname "$0")/.."
  scripts/build.sh
  cmake --install build --prefix "$prefix"
  echo "setup: installed into $prefix; for your shell profile:"
  echo "  export PATH=\"$prefix/bin:\$PATH\""
  echo "  export PYTHONPATH=\"$prefix/lib/python3/dist-packages:\$PYTHONPATH\""
  echo "  export CMAKE_PREFIX_PATH=\"$prefix:\$CMAKE_PREFIX_PATH\"   # find_package(nephroseg)"
fi
