#!/usr/bin/env bash
# Sets up, builds and runs every test (unit + parity + end-to-end).
# Parity and sample-data tests read ../shared (or $NEPHROSEG_SHARED) and are skipped
# with a message when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scripts/setup.sh
scripts/build.sh
# A single-node Slurm cluster for the cluster tests (they skip, saying why, when it
# cannot start); stopped by its pid files on every exit path.
slurm_dir=$(mktemp -d /tmp/nephroseg-slurm.XXXXXX)
trap '"$root/scripts/slurm/local_cluster.sh" stop "$slurm_dir" || true' EXIT
if "$root/scripts/slurm/local_cluster.sh" start "$slurm_dir"; then
  export SLURM_CONF="$slurm_dir/slurm.conf"
else
  echo "test: the local Slurm cluster did not start (logs in $slurm_dir/log); Slurm tests will skip"
fi
cd build
ctest --output-on-failure --timeout 1200 -j "$(nproc)" "$@"
# The CLI runs every model under its caching CPU allocator (src/core/memory.cpp); check
# that parity holds there too.
if [ "$#" -eq 0 ]; then
  NEPHROSEG_TEST_CPU_CACHE_MB=2048 ctest --output-on-failure --timeout 1200 -j "$(nproc)" -L parity
fi
# Fuzz smoke run (fuzz/run_smoke.sh: clang, ASan + UBSan, every target for
# NEPHROSEG_FUZZ_SECONDS each, default 30; a crash, leak or timeout fails the run). 30 s,
# not 60: ten targets add 5 minutes to a cold clang build of ~23 minutes on 2 shared
# cores (docs/security.md, "CI cost").
# NEPHROSEG_FUZZ_SMOKE=0 skips it; it runs only for the full suite (no ctest arguments).
if [ "$#" -eq 0 ] && [ "${NEPHROSEG_FUZZ_SMOKE:-1}" != 0 ]; then
  cd "$root"
  fuzz/run_smoke.sh "${NEPHROSEG_FUZZ_SECONDS:-30}"
fi
