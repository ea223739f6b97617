#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) in build-fuzz/ and runs each
# for N seconds (default 60) on its seed corpus; exits non-zero on any crash, leak,
# sanitizer report or timeout. Used by CI; also the documented long run with a larger
# N (see docs/security.md).
#   fuzz/run_smoke.sh [seconds] [target ...]      e.g. fuzz/run_smoke.sh 60 pickle pth
# Environment: BUILD_DIR (default build-fuzz), JOBS (default 2), FUZZ_SEED (default 1:
# every run starts down the same mutation sequence, so CI retraces what a longer local
# run with that seed covered, up to the small drift that coverage feedback brings; 0: a
# fresh random seed each run, for exploration), FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pickle pth image npy config_json prompts_json dm calibration slide zip serve_request ome_xml)
build=${BUILD_DIR:-build-fuzz}
jobs=${JOBS:-2}
seed=${FUZZ_SEED:-1}

# clang from Debian's clang-14 package (scripts/setup.sh); the unversioned names when
# the `clang` package provides them.
cxx=$(command -v clang++ || command -v clang++-14 || true)
cc=$(command -v clang || command -v clang-14 || true)
if [ -z "$cxx" ] || [ -z "$cc" ]; then
  echo "run_smoke: clang++ not found (install clang-14 and libclang-rt-14-dev: scripts/setup.sh)" >&2
  exit 1
fi
CC=$cc CXX=$cxx cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DNEPHROSEG_FUZZ=ON -DNEPHROSEG_BUILD_TESTS=OFF -DNEPHROSEG_BUILD_TOOLS=OFF \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer" >/dev/null
cmake --build "$build" -j"$jobs" --target "${targets[@]/#/fuzz_}"

corpus_root="$build/corpus"
python3 fuzz/make_corpus.py "$corpus_root"
# LibTorch's miniz keeps a small allocation when it rejects an archive; OpenMP and
# glibc keep thread-local state: not nephroseg's leaks (see fuzz/lsan.supp).
export LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1"
export OMP_NUM_THREADS=1

status=0
for t in "${targets[@]}"; do
  dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
  work="$build/work/$t"
  mkdir -p "$work"
  echo "== fuzz_$t: ${seconds}s"
  if ! "$build/fuzz/fuzz_$t" "${dict[@]}" -max_total_time="$seconds" -timeout=10 -seed="$seed" \
      -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 -artifact_prefix="$work/" \
      ${FUZZ_ARGS:-} "$work" "$corpus_root/$t" 2>"$work/log.txt"; then
    echo "fuzz_$t FAILED: see $work/log.txt and the crash-* file there"
    tail -40 "$work/log.txt"
    status=1
  fi
  grep -E "stat::number_of_executed_units|stat::average_exec_per_sec" "$work/log.txt" || true
done
exit $status
