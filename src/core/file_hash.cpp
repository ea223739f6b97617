#include "nephroseg/core/file_hash.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

#include "nephroseg/core/error.h"

namespace nephroseg {
namespace {

struct Hasher {
  uint64_t h = 0x9E3779B97F4A7C15ull;
  uint64_t total = 0;
  static uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
  void word(uint64_t w) {
    h ^= w * 0xC2B2AE3D27D4EB4Full;
    h = rotl(h, 31) * 0x9E3779B97F4A7C15ull + 0x165667B19E3779F9ull;
  }
  void bytes(const char* p, size_t n) {
    total += n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      word(w);
    }
    uint64_t tail = 0;
    std::memcpy(&tail, p + i, n - i);
    if (n > i) word(tail ^ (static_cast<uint64_t>(n - i) << 56));
  }
  std::string finish() const {
    uint64_t x = h ^ total;
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 33;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%llu:%016llx", static_cast<unsigned long long>(total),
                  static_cast<unsigned long long>(x));
    return buf;
  }
};

}  // namespace

std::string file_fingerprint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  NEPHRO_CHECK(in.good(), "cannot read '", path, "'");
  Hasher hs;
  std::vector<char> buf(1 << 20);
  // Feed whole 1 MiB blocks so the result does not depend on how reads are split
  // except at the very end.
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto got = in.gcount();
    if (got > 0) hs.bytes(buf.data(), static_cast<size_t>(got));
  }
  NEPHRO_CHECK(in.eof(), "error while reading '", path, "'");
  return hs.finish();
}

std::string text_fingerprint(const std::string& text) {
  Hasher hs;
  hs.bytes(text.data(), text.size());
  return hs.finish();
}

}  // namespace nephroseg
