#include "nephroseg/core/memory.h"

#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace nephroseg {
namespace {

constexpr size_t kAlign = 64;               // c10's CPU alignment (gAlignment)
constexpr size_t kHeader = 64;              // block header, keeps the data aligned
constexpr size_t kLargeMin = 256u << 10;    // smaller requests bypass the cache
constexpr uint64_t kMagic = 0x6e65706872636163ull;

// Every block: [header | data]; the header records the data capacity, so one deleter
// (taking the data pointer, as raw_deleter requires) frees both kinds.
struct Header {
  uint64_t magic;
  size_t capacity;
};

class CachingCpuAllocator final : public c10::Allocator {
 public:
  explicit CachingCpuAllocator(size_t limit) : limit_(limit) {}

  c10::DataPtr allocate(size_t n) const override {
    if (n == 0) return {nullptr, nullptr, &CachingCpuAllocator::deleter, c10::Device(c10::kCPU)};
    void* data = n >= kLargeMin ? self().take_large(n) : fresh(n);
    return {data, data, &CachingCpuAllocator::deleter, c10::Device(c10::kCPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &CachingCpuAllocator::deleter; }

  static void deleter(void* data);

  static CachingCpuAllocator* instance_;  // the installed cache, or null

  CpuTensorCacheStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return {hits_, misses_, idle_, limit_};
  }

  void release_all() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [cap, data] : idle_blocks_) std::free(base_of(data));
    idle_blocks_.clear();
    idle_ = 0;
  }

 private:
  CachingCpuAllocator& self() const { return const_cast<CachingCpuAllocator&>(*this); }

  static void* base_of(void* data) { return static_cast<char*>(data) - kHeader; }
  static Header* header_of(void* data) { return static_cast<Header*>(base_of(data)); }

  // A block of `capacity` data bytes from malloc; on failure the idle cache is freed and
  // the request retried once, then an out-of-memory error naming the size is thrown.
  static void* fresh(size_t capacity) {
    void* base = nullptr;
    if (posix_memalign(&base, kAlign, capacity + kHeader) != 0) {
      if (instance_ != nullptr) instance_->release_all();
      base = nullptr;
      if (posix_memalign(&base, kAlign, capacity + kHeader) != 0) {
        TORCH_CHECK(false, "out of memory: cannot allocate ", capacity, " bytes for a CPU tensor");
      }
    }
    auto* h = static_cast<Header*>(base);
    h->magic = kMagic;
    h->capacity = capacity;
    return static_cast<char*>(base) + kHeader;
  }

  void* take_large(size_t n) {
    // Accept an idle block up to 1/8 larger (at least 1 MiB slack), so shapes that
    // differ slightly still reuse blocks, while a tensor never holds much more than
    // it asked for.
    const size_t slack = std::max<size_t>(n / 8, 1u << 20);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = idle_blocks_.lower_bound(n);
      if (it != idle_blocks_.end() && it->first <= n + slack) {
        void* data = it->second;
        idle_ -= it->first;
        idle_blocks_.erase(it);
        ++hits_;
        return data;
      }
      ++misses_;
    }
    // Round up to 64 KiB so that near-equal shapes land on one capacity.
    const size_t capacity = (n + (64u << 10) - 1) & ~size_t{(64u << 10) - 1};
    return fresh(capacity);
  }

  void give_back(void* data) {
    const size_t cap = header_of(data)->capacity;
    if (cap < kLargeMin || cap > limit_) {
      std::free(base_of(data));
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    // Over the limit: free the smallest idle blocks first (the large ones are the
    // expensive ones to fault in again), then keep this one.
    while (idle_ + cap > limit_ && !idle_blocks_.empty()) {
      auto it = idle_blocks_.begin();
      idle_ -= it->first;
      std::free(base_of(it->second));
      idle_blocks_.erase(it);
    }
    idle_blocks_.emplace(cap, data);
    idle_ += cap;
  }

  const size_t limit_;
  std::mutex mu_;
  std::multimap<size_t, void*> idle_blocks_;  // capacity -> data
  size_t idle_ = 0;
  int64_t hits_ = 0, misses_ = 0;
};

CachingCpuAllocator* CachingCpuAllocator::instance_ = nullptr;

void CachingCpuAllocator::deleter(void* data) {
  if (data == nullptr) return;
  Header* h = header_of(data);
  TORCH_CHECK(h->magic == kMagic, "nephroseg CPU tensor cache: freeing a block it does not own");
  if (h->capacity >= kLargeMin && instance_ != nullptr) {
    instance_->give_back(data);
  } else {
    std::free(base_of(data));
  }
}

}  // namespace

bool install_cpu_tensor_cache(size_t limit_bytes) {
  static std::mutex install_mu;
  std::lock_guard<std::mutex> lock(install_mu);
  if (limit_bytes == 0) return CachingCpuAllocator::instance_ != nullptr;
  if (CachingCpuAllocator::instance_ == nullptr) {
    // Never destroyed: tensors may be freed during static destruction.
    CachingCpuAllocator::instance_ = new CachingCpuAllocator(limit_bytes);
    c10::SetCPUAllocator(CachingCpuAllocator::instance_, /*priority=*/100);
  }
  return c10::GetCPUAllocator() == CachingCpuAllocator::instance_;
}

size_t cpu_tensor_cache_limit_from_env(size_t fallback_bytes) {
  const char* env = std::getenv("NEPHROSEG_CPU_CACHE_MB");
  if (env == nullptr || *env == '\0') return fallback_bytes;
  char* end = nullptr;
  const unsigned long long mb = std::strtoull(env, &end, 10);
  if (end == env || *end != '\0') return fallback_bytes;
  return static_cast<size_t>(mb) << 20;
}

CpuTensorCacheStats cpu_tensor_cache_stats() {
  if (CachingCpuAllocator::instance_ == nullptr) return {};
  return CachingCpuAllocator::instance_->stats();
}

void release_free_memory() {
  if (CachingCpuAllocator::instance_ != nullptr) CachingCpuAllocator::instance_->release_all();
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace nephroseg
