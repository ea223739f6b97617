#!/usr/bin/env bash
# Sets up, builds and runs every test (unit + parity + end-to-end).
# Parity and sample-data tests read ../shared (or $NEPHROSEG_SHARED) and are skipped
# with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
cd build
ctest --output-on-failure --timeout 1200 -j "$(nproc)" "$@"
