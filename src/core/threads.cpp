#include "nephroseg/core/threads.h"

#include <ATen/Parallel.h>

#include <algorithm>
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
  });
}

}  // namespace nephroseg
