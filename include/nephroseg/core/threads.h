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

/// Logs one warning (once per process) if the reference BLAS is active, or if OpenBLAS
/// runs generic kernels on a CPU that has AVX2 or AVX-512 (see better_openblas_kernel).
void warn_if_slow_blas();

/// The kernel set OpenBLAS chose for this CPU at load time ("SkylakeX", "Haswell",
/// "Prescott", ...), or "" when OpenBLAS is not the BLAS in this process.
std::string openblas_kernel();

/// The kernel set to ask OpenBLAS for (through OPENBLAS_CORETYPE) when it fell back to
/// generic pre-AVX2 kernels because it does not know this CPU model, and "" when its
/// own choice stands. Debian 12's OpenBLAS 0.3.21 runs an Emerald Rapids Xeon (family
/// 6, model 207) with its SSE3 "Prescott" kernels: sgemm at a quarter of the
/// "SkylakeX" kernels' speed, and rounding that no golden vector was made with.
/// Returns "SkylakeX" where the CPU has AVX-512 F/BW/DQ/VL, else "Haswell" where it
/// has AVX2 and FMA, else "". Never second-guesses an AVX2 or AVX-512 choice.
std::string better_openblas_kernel();

/// Starts this program again (execv of /proc/self/exe with the same argv) with
/// OPENBLAS_CORETYPE set to better_openblas_kernel(), because OpenBLAS reads it only
/// when it is loaded, before main(). Does nothing, and returns, when that is "", when
/// OPENBLAS_CORETYPE is already set (a user's explicit choice is kept, and a re-run
/// process never re-runs again) or when the exec fails. Call it first in main(),
/// before any thread starts; the CLI and every test executable do.
void rerun_with_better_blas_kernel(char** argv);

}  // namespace nephroseg
