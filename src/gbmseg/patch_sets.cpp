// Reference mask -> fg / bg reference patch lists (spec §4).
#include <opencv2/core.hpp>

#include "nephroseg/core/error.h"
#include "nephroseg/gbmseg/prompts.h"

namespace nephroseg::gbmseg {

namespace {

enum class BlockClass { kFg, kBg, kMixed };

BlockClass classify_block(const cv::Mat& mask, int y0, int x0, const PatchSetOptions& opt) {
  const int channels = mask.channels();
  const int p = opt.patch_size;
  const int threshold = opt.rule == PatchRule::kAllNonZero ? 1 : opt.threshold;
  bool all_fg = true, all_bg = true;
  for (int y = y0; y < y0 + p && (all_fg || all_bg); ++y) {
    const uint8_t* row = mask.ptr<uint8_t>(y) + static_cast<size_t>(x0) * channels;
    for (int i = 0; i < p * channels; ++i) {
      if (row[i] >= threshold) {
        all_bg = false;
      } else {
        all_fg = false;
      }
    }
  }
  if (all_fg) return BlockClass::kFg;
  if (all_bg) return BlockClass::kBg;
  return BlockClass::kMixed;
}

}  // namespace

// Ref: feature_matching/generate_points.py::generate (the mask loop over
// range(0, S - 14, 14) in both axes: the last patch row / column is never examined)
PatchSets reference_patch_sets(const cv::Mat& mask, const PatchSetOptions& options) {
  NEPHRO_CHECK(!mask.empty(), "reference_patch_sets: the reference mask is empty");
  NEPHRO_CHECK(mask.depth() == CV_8U, "reference_patch_sets: the reference mask must be 8-bit,"
               " got OpenCV depth ", mask.depth());
  NEPHRO_CHECK(mask.rows == mask.cols, "reference_patch_sets: the reference mask must be square"
               " (S x S), got ", mask.rows, "x", mask.cols);
  NEPHRO_CHECK(options.patch_size > 0 && mask.rows % options.patch_size == 0,
               "reference_patch_sets: mask side ", mask.rows,
               " is not a multiple of the patch size ", options.patch_size);
  NEPHRO_CHECK(options.rule == PatchRule::kAllNonZero ||
                   (options.threshold >= 1 && options.threshold <= 255),
               "reference_patch_sets: threshold must be in 1..255, got ", options.threshold);
  PatchSets out;
  out.grid = mask.rows / options.patch_size;
  const int examined = options.skip_last_row_col ? out.grid - 1 : out.grid;
  for (int r = 0; r < examined; ++r) {
    for (int c = 0; c < examined; ++c) {
      const int64_t k = static_cast<int64_t>(r) * out.grid + c;
      switch (classify_block(mask, r * options.patch_size, c * options.patch_size, options)) {
        case BlockClass::kFg: out.fg.push_back(k); break;
        case BlockClass::kBg: out.bg.push_back(k); break;
        case BlockClass::kMixed: break;
      }
    }
  }
  return out;
}

Point patch_centre(int64_t k, int grid, int patch_size) {
  NEPHRO_CHECK(grid > 0 && k >= 0 && k < static_cast<int64_t>(grid) * grid,
               "patch_centre: patch index ", k, " outside a ", grid, "x", grid, " grid");
  const int64_t half = patch_size / 2;
  return Point{static_cast<int32_t>((k % grid) * patch_size + half),
               static_cast<int32_t>((k / grid) * patch_size + half)};
}

Points patch_centres(const PatchIndices& patches, int grid, int patch_size) {
  Points out;
  out.reserve(patches.size());
  for (int64_t k : patches) out.push_back(patch_centre(k, grid, patch_size));
  return out;
}

}  // namespace nephroseg::gbmseg
