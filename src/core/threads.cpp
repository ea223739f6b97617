#include "nephroseg/core/threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <thread>

#include "nephroseg/core/log.h"

namespace nephroseg {

int configure_threads(int n) {
  if (n <= 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(n);
  return at::get_num_threads();
}

std::string active_blas_library() {
  // The dynamic loader has already resolved the libblas.so.3 alternative; the maps
  // file shows which real file is mapped.
  std::ifstream maps("/proc/self/maps");
  std::string line;
  std::string found;
  while (std::getline(maps, line)) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    if (path.find("openblas") != std::string::npos || path.find("libblas.so") != std::string::npos ||
        path.find("libmkl") != std::string::npos || path.find("blis") != std::string::npos) {
      found = path;
      if (path.find("openblas") != std::string::npos || path.find("libmkl") != std::string::npos) {
        break;  // a fast BLAS wins over a reference libblas also mapped
      }
    }
  }
  return found;
}

bool reference_blas_active() {
  const std::string lib = active_blas_library();
  if (lib.empty()) return false;
  return lib.find("openblas") == std::string::npos && lib.find("libmkl") == std::string::npos &&
         lib.find("blis") == std::string::npos && lib.find("/blas/") != std::string::npos;
}

void warn_if_slow_blas() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (reference_blas_active()) {
      log_warn("the slow reference BLAS is active (", active_blas_library(),
               "); install libopenblas0-openmp (about 50x faster): "
               "apt-get install libopenblas0-openmp");
    }
    const std::string better = better_openblas_kernel();
    if (!better.empty()) {
      log_warn("OpenBLAS does not know this CPU model and runs its generic '", openblas_kernel(),
               "' kernels (fp32 matrix products about 4x slower); start the program with "
               "OPENBLAS_CORETYPE=", better, " set");
    }
  });
}

std::string openblas_kernel() {
  // openblas_get_corename is OpenBLAS's own export; looked up at run time because the
  // BLAS behind libblas.so.3 is chosen by the system (update-alternatives), not by us.
  using CoreName = char* (*)();
  auto* fn = reinterpret_cast<CoreName>(::dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (fn == nullptr) return "";
  const char* name = fn();
  return name == nullptr ? std::string() : std::string(name);
}

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// OpenBLAS 0.3.21's x86-64 kernel sets that use AVX2 (or AVX-512) for sgemm.
bool is_avx2_class_kernel(const std::string& name) {
  static const std::array<const char*, 6> kAvx2 = {"haswell", "zen", "skylakex", "cooperlake",
                                                   "sapphirerapids", "excavator"};
  const std::string n = lower(name);
  return std::any_of(kAvx2.begin(), kAvx2.end(), [&](const char* k) { return n == k; });
}

}  // namespace

std::string better_openblas_kernel() {
  const std::string current = openblas_kernel();
  if (current.empty() || is_avx2_class_kernel(current)) return "";
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
    return "SkylakeX";
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return "";
}

void rerun_with_better_blas_kernel(char** argv) {
  if (argv == nullptr || argv[0] == nullptr || std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
  const std::string better = better_openblas_kernel();
  if (better.empty()) return;
  if (::setenv("OPENBLAS_CORETYPE", better.c_str(), 1) != 0) return;
  ::execv("/proc/self/exe", argv);
  // Only reached when the exec failed: carry on with OpenBLAS's own choice, and leave
  // the environment as it was so that child processes decide for themselves.
  ::unsetenv("OPENBLAS_CORETYPE");
}

}  // namespace nephroseg
