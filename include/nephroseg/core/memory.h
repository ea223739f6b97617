// nephroseg/core/memory.h: a caching allocator for LibTorch's large CPU tensors.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nephroseg {

/// LibTorch's default CPU allocator hands every tensor to malloc, and glibc serves
/// large blocks with fresh mmap pages that are unmapped again on free. A ViT forward
/// pass allocates the same few large shapes in every block, so it spends much of its
/// time in page faults and page zeroing (the SAM ViT-L encoder benchmark at 2 threads:
/// 26 of 161 s of CPU time in the kernel; 6 s with this cache). This cache keeps freed
/// blocks of at least 256 KiB and hands them out again for requests of the same size or
/// up to 1/8 smaller, holding at most `limit_bytes` of idle memory; beyond that the
/// smallest idle blocks are freed first. Peak memory therefore grows by about
/// `limit_bytes` at most (plus the 1/8 slack of reused blocks). Results are unchanged:
/// only where tensors live changes.
///
/// Installs it as LibTorch's CPU allocator for tensors allocated from now on; call
/// once at start-up. limit_bytes == 0 leaves the default allocator in place.
/// Returns true when the cache is active.
bool install_cpu_tensor_cache(size_t limit_bytes);

/// The limit from the environment variable NEPHROSEG_CPU_CACHE_MB (MiB; 0 disables),
/// else `fallback_bytes`.
size_t cpu_tensor_cache_limit_from_env(size_t fallback_bytes);

struct CpuTensorCacheStats {
  int64_t hits = 0;          // large requests served from the cache
  int64_t misses = 0;        // large requests that went to malloc
  size_t idle_bytes = 0;     // memory held by the cache, not by any tensor
  size_t limit_bytes = 0;
};

/// Counters of the installed cache (all zero when none is installed).
CpuTensorCacheStats cpu_tensor_cache_stats();

/// Frees every idle cached block and returns free heap memory to the kernel (glibc
/// malloc_trim), so that the resident set counts only live tensors; for memory
/// measurements.
void release_free_memory();

}  // namespace nephroseg
