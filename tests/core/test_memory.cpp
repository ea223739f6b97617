#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "nephroseg/core/memory.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

using namespace nephroseg;

#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
namespace {
// Number of blocks malloc currently serves with mmap (glibc's hblks).
int mmapped_blocks() { return mallinfo2().hblks; }
}  // namespace

// Each ctest entry runs in its own process, so the process-wide setting does not leak.
TEST(Memory, TunedAllocatorServesLargeBlocksFromTheHeap) {
  ::unsetenv("NEPHROSEG_MALLOC");
  const int before = mmapped_blocks();
  ASSERT_TRUE(tune_allocator_for_large_tensors());
  std::vector<void*> blocks;
  for (int i = 0; i < 4; ++i) {
    void* p = std::malloc(48u << 20);  // 48 MiB: above glibc's largest mmap threshold
    ASSERT_NE(p, nullptr);
    std::memset(p, i, 48u << 20);
    blocks.push_back(p);
  }
  EXPECT_EQ(mmapped_blocks(), before);
  for (void* p : blocks) std::free(p);
}

TEST(Memory, DefaultAllocatorMapsLargeBlocksAndEnvOptsOut) {
  ::setenv("NEPHROSEG_MALLOC", "default", 1);
  EXPECT_FALSE(tune_allocator_for_large_tensors());
  ::unsetenv("NEPHROSEG_MALLOC");
  const int before = mmapped_blocks();
  void* p = std::malloc(48u << 20);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(mmapped_blocks(), before + 1);  // untouched glibc: a 48 MiB block is mmapped
  std::free(p);
}
#endif
