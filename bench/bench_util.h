// bench/bench_util.h (internal to nephroseg_bench): timing and process-memory helpers
// shared by the benchmarks.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

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

}  // namespace nephroseg::bench
