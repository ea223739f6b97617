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
# The CLI runs every model under its caching CPU allocator (src/core/memory.cpp); check
# that parity holds there too.
if [ "$#" -eq 0 ]; then
  NEPHROSEG_TEST_CPU_CACHE_MB=2048 ctest --output-on-failure --timeout 1200 -j "$(nproc)" -L parity
fi
