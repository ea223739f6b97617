#include "bench_util.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <fstream>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <string>

#include "core/linear.h"
#include "core/module_init.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/threads.h"

namespace nephroseg::bench {

ProcessMemory process_memory() {
  std::ifstream in("/proc/self/status");
  std::string line;
  ProcessMemory m;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) m.rss = std::stoll(line.substr(6)) * 1024;
    if (line.rfind("VmHWM:", 0) == 0) m.peak = std::stoll(line.substr(6)) * 1024;
  }
  return m;
}

namespace {
int64_t g_peak_before_resets = 0;  // the largest VmHWM seen before a reset
}  // namespace

int64_t process_peak_memory() {
  return std::max(g_peak_before_resets, process_memory().peak);
}

bool reset_peak_memory() {
  g_peak_before_resets = process_peak_memory();
  std::ofstream out("/proc/self/clear_refs");
  if (!out) return false;
  out << "5";
  out.close();
  return out.good();
}

std::vector<Precision> parse_precisions(const std::string& list, Precision fallback, bool force) {
  std::vector<Precision> out;
  auto add = [&](Precision p) {
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  };
  if (list.empty()) {
    add(resolve_precision(fallback, force));
    return out;
  }
  std::stringstream ss(list);
  for (std::string tok; std::getline(ss, tok, ',');) {
    add(resolve_precision(precision_names().parse(tok, "--precisions"), force));
  }
  NEPHRO_CHECK(!out.empty(), "--precisions: no precision in '", list, "'");
  return out;
}

const char* gemm_name(Precision p) {
  return p == Precision::kBf16 ? "bf16 gemm" : p == Precision::kInt8 ? "int8 gemm" : "sgemm";
}

GemmPeaks measure_gemm_peaks(const std::vector<Precision>& precisions, std::ostream& out) {
  c10::InferenceMode guard;
  const int64_t n = 2048;
  const double flops = 2.0 * n * n * n;
  const at::Tensor a = at::randn({n, n}), b = at::randn({n, n});
  GemmPeaks peaks;
  // The fp32 peak depends on the kernels OpenBLAS runs (core/threads.h), so name them.
  const std::string kernel = openblas_kernel();
  const std::string sgemm_by = kernel.empty() ? "" : " (OpenBLAS " + kernel + " kernels)";
  auto report = [&](Precision p, double s) {
    out << std::fixed << std::setprecision(3) << gemm_name(p) << " 2048x2048: " << s << " s, peak "
        << std::setprecision(1) << flops / s / 1e9 << " GFLOP/s"
        << (p == Precision::kFp32 ? sgemm_by : "") << std::setprecision(3) << std::endl;
    return flops / s / 1e9;
  };
  // fp32 always: the reference of every ratio.
  {
    at::Tensor c = at::empty({n, n});
    peaks.fp32 = report(Precision::kFp32, median(time_runs(1, 5, [&] { at::mm_out(c, a, b); })));
  }
  for (Precision p : precisions) {
    if (p == Precision::kBf16) {
      const at::Tensor ab = a.to(at::kBFloat16), bb = b.to(at::kBFloat16);
      at::Tensor c = at::empty({n, n}, at::kBFloat16);
      peaks.bf16 = report(p, median(time_runs(1, 5, [&] { at::mm_out(c, ab, bb); })));
    } else if (p == Precision::kInt8) {
      Linear lin = make_linear(n, n, /*bias=*/false);
      lin->set_precision(Precision::kInt8);
      peaks.int8 = report(p, median(time_runs(1, 5, [&] { lin->forward(a); })));
    }
  }
  return peaks;
}

}  // namespace nephroseg::bench
