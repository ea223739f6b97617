// nephroseg/core/threads.h: intra-op threads and the BLAS behind LibTorch.
#pragma once

#include <string>

namespace nephroseg {

/// Sets LibTorch's intra-op thread count (and OpenMP's). n <= 0 means every core.
/// LibTorch picks 1 thread on the 2-vCPU machines we target, so callers should use
/// this. Returns the number of threads now in force.
int configure_threads(int n);

/// Path of the shared library that provides BLAS in this process (the resolved
/// libblas.so.3 / libopenblas), or "" when it cannot be told.
std::string active_blas_library();

/// True when the netlib reference BLAS is loaded (about 50x slower than OpenBLAS).
bool reference_blas_active();

/// Logs one warning (once per process) if the reference BLAS is active.
void warn_if_slow_blas();

}  // namespace nephroseg
