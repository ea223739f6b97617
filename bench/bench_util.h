// bench/bench_util.h (internal to nephroseg_bench): timing and process-memory helpers
// shared by the benchmarks.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "nephroseg/core/precision.h"

namespace nephroseg::bench {

using Clock = std::chrono::steady_clock;

inline double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// Runs fn warmup + runs times; returns the wall times of the last `runs`.
template <typename Fn>
std::vector<double> time_runs(int64_t warmup, int64_t runs, Fn&& fn) {
  std::vector<double> t;
  for (int64_t i = 0; i < warmup + runs; ++i) {
    const auto t0 = Clock::now();
    fn();
    const double dt = since(t0);
    if (i >= warmup) t.push_back(dt);
  }
  return t;
}

/// Resident set size and its peak (VmRSS, VmHWM of /proc/self/status) in bytes; 0
/// where unavailable.
struct ProcessMemory {
  int64_t rss = 0;
  int64_t peak = 0;
};
ProcessMemory process_memory();

/// Restarts the peak (VmHWM) from the current RSS (Linux >= 4.0: "5" >
/// /proc/self/clear_refs). False where unsupported.
bool reset_peak_memory();

/// The process's peak RSS over its whole life in bytes: the largest VmHWM seen before
/// any reset_peak_memory, or now. (A reset also lowers what getrusage and
/// `/usr/bin/time` report at exit, so benchmarks that reset print this instead.)
int64_t process_peak_memory();

/// "fp32,bf16,int8" -> the precisions to time, each resolved (auto -> this CPU's pick;
/// bf16 without native support is refused unless `force`); "" -> {fallback}.
/// Duplicates after resolution are dropped.
std::vector<Precision> parse_precisions(const std::string& list, Precision fallback, bool force);

/// Same-run GEMM peaks in GFLOP/s, one per precision that is timed: fp32 sgemm
/// (2048^3 at::mm), bf16 gemm (the same in bfloat16), int8 gemm (a 2048 x 2048
/// dynamically quantized Linear on 2048 rows, activation quantization included, as the
/// int8 models run it). Each measured line is written to `out`.
struct GemmPeaks {
  double fp32 = 0, bf16 = 0, int8 = 0;
  double of(Precision p) const {
    return p == Precision::kBf16 ? bf16 : p == Precision::kInt8 ? int8 : fp32;
  }
  /// Element-wise maximum: peaks measured before and after the timed runs, so that a
  /// burst of background load during one measurement does not inflate the fractions.
  GemmPeaks max_with(const GemmPeaks& o) const {
    return {std::max(fp32, o.fp32), std::max(bf16, o.bf16), std::max(int8, o.int8)};
  }
};
GemmPeaks measure_gemm_peaks(const std::vector<Precision>& precisions, std::ostream& out);

/// The peak's name in reports: "sgemm", "bf16 gemm", "int8 gemm".
const char* gemm_name(Precision p);

}  // namespace nephroseg::bench
