#include "nephroseg/core/memory.h"

#include <climits>
#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace nephroseg {

bool tune_allocator_for_large_tensors() {
  const char* env = std::getenv("NEPHROSEG_MALLOC");
  if (env != nullptr && std::strcmp(env, "default") == 0) return false;
#if defined(__GLIBC__)
  // Give the heap top back only when 2 GiB of it are free.
  const bool trim = mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1 &&
                    mallopt(M_TOP_PAD, 64 << 20) == 1;
  // Serve large requests from the heap, where freed blocks are reused. Threads'
  // arenas still fall back to mmap for blocks larger than their heap (glibc).
  const bool no_mmap = mallopt(M_MMAP_MAX, 0) == 1;
  return trim && no_mmap;
#else
  return false;
#endif
}

}  // namespace nephroseg
