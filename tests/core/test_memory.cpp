#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstdlib>
#include <vector>

#include "nephroseg/core/memory.h"

using namespace nephroseg;

// Each ctest entry runs in its own process, so installing the cache does not leak
// into other tests.

TEST(Memory, CacheReusesFreedLargeBlocksAndKeepsValues) {
  ASSERT_TRUE(install_cpu_tensor_cache(size_t{512} << 20));
  const at::Tensor a = at::randn({2048, 1024});  // 8 MiB
  const at::Tensor expected = a * 3.0 + 1.0;
  const CpuTensorCacheStats s0 = cpu_tensor_cache_stats();
  for (int i = 0; i < 5; ++i) {
    const at::Tensor c = a * 3.0 + 1.0;  // a temporary and a result of 8 MiB each time
    EXPECT_TRUE(at::equal(c, expected));
  }
  const CpuTensorCacheStats s1 = cpu_tensor_cache_stats();
  EXPECT_GE(s1.hits - s0.hits, 8);  // after the first round every block is a reused one
  EXPECT_LE(s1.misses - s0.misses, 2);
  EXPECT_EQ(s1.limit_bytes, size_t{512} << 20);
}

TEST(Memory, IdleMemoryStaysWithinTheLimit) {
  ASSERT_TRUE(install_cpu_tensor_cache(size_t{64} << 20));
  {
    std::vector<at::Tensor> live;
    for (int i = 0; i < 12; ++i) live.push_back(at::ones({(i + 1) * (1 << 18)}));  // 1..12 MiB
  }
  const CpuTensorCacheStats s = cpu_tensor_cache_stats();
  EXPECT_GT(s.idle_bytes, size_t{0});
  EXPECT_LE(s.idle_bytes, size_t{64} << 20);
  release_free_memory();
  EXPECT_EQ(cpu_tensor_cache_stats().idle_bytes, size_t{0});
  // A block bigger than the limit is never kept.
  { const at::Tensor big = at::zeros({32 << 20}); }  // 128 MiB
  EXPECT_EQ(cpu_tensor_cache_stats().idle_bytes, size_t{0});
}

TEST(Memory, SmallTensorsBypassTheCacheAndZeroDisables) {
  EXPECT_FALSE(install_cpu_tensor_cache(0));  // nothing installed, nothing to install
  EXPECT_EQ(cpu_tensor_cache_stats().limit_bytes, size_t{0});
  ASSERT_TRUE(install_cpu_tensor_cache(size_t{16} << 20));
  const CpuTensorCacheStats s0 = cpu_tensor_cache_stats();
  for (int i = 0; i < 100; ++i) {
    const at::Tensor t = at::full({1000}, static_cast<float>(i));
    EXPECT_EQ(t.sum().item<float>(), 1000.0f * i);
  }
  const CpuTensorCacheStats s1 = cpu_tensor_cache_stats();
  EXPECT_EQ(s1.hits + s1.misses, s0.hits + s0.misses);
}

TEST(Memory, LimitFromEnvironment) {
  ::setenv("NEPHROSEG_CPU_CACHE_MB", "300", 1);
  EXPECT_EQ(cpu_tensor_cache_limit_from_env(7), size_t{300} << 20);
  ::setenv("NEPHROSEG_CPU_CACHE_MB", "0", 1);
  EXPECT_EQ(cpu_tensor_cache_limit_from_env(7), size_t{0});
  ::setenv("NEPHROSEG_CPU_CACHE_MB", "lots", 1);
  EXPECT_EQ(cpu_tensor_cache_limit_from_env(7), size_t{7});
  ::unsetenv("NEPHROSEG_CPU_CACHE_MB");
  EXPECT_EQ(cpu_tensor_cache_limit_from_env(7), size_t{7});
}
