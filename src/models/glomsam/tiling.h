// src/models/glomsam/tiling.h (internal): the tile grid of GlomSamModel::predict, shared
// with glomsam::rough_mask so both cover an image the same way.
#pragma once

#include <cstdint>
#include <vector>

namespace nephroseg::glomsam::detail {

/// Start offsets of S-sized tiles over `len` pixels with `overlap` pixels of overlap:
/// 0 alone when len <= S, else a stride of S - overlap and a last tile flush with the end.
inline std::vector<int64_t> tile_starts(int64_t len, int64_t S, int64_t overlap) {
  std::vector<int64_t> s{0};
  if (len <= S) return s;
  const int64_t stride = S - overlap;
  for (int64_t p = stride; p + S < len; p += stride) s.push_back(p);
  s.push_back(len - S);
  return s;
}

}  // namespace nephroseg::glomsam::detail
