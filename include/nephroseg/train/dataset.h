// nephroseg/train/dataset.h: image/mask folders -> model-size training patches.
//
// Pairing: every image in the image folder needs a mask with the same file stem in the
// mask folder. Problems (empty folder, image without mask, unreadable file, image and
// mask of different sizes) are all collected and reported in ONE nephroseg::Error,
// naming each file, before any training starts.
// Masks are binarised: a pixel is foreground when any channel is > 127 (or > 0 for
// files whose maximum value is 1).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace nephroseg::train {

struct SamplePair {
  std::string name;   // file stem
  std::string image;  // path
  std::string mask;   // path
};

/// Pairs the two folders by file stem (sorted by name). Throws listing every problem, or,
/// when `problems` is given, appends them there and returns the pairs that did match
/// (a missing folder always throws).
std::vector<SamplePair> pair_folders(const std::string& images_dir, const std::string& masks_dir,
                                     std::vector<std::string>* problems = nullptr);

/// Reads and checks every pair (readable, same size); throws listing every problem, or
/// appends them to `problems` when given.
void validate_pairs(const std::vector<SamplePair>& pairs, std::vector<std::string>* problems = nullptr);

/// The one error message listing `problems` (for callers that collect them).
std::string describe_data_problems(const std::vector<std::string>& problems);

struct PatchOptions {
  int64_t model_size = 1024;  // side of the model input
  int64_t patch_size = 0;     // side cut from the image (0 = model_size); resized to model_size
  int64_t stride = 0;         // sliding-window stride for larger images (0 = patch_size)
};

/// Model-size patches held in memory as uint8.
struct PatchSet {
  at::Tensor images;  // [N, 3, S, S] uint8 RGB
  at::Tensor masks;   // [N, 1, S, S] uint8 {0,1}
  std::vector<std::string> names;  // "<stem>@y,x"
  size_t size() const { return names.size(); }
};

/// Cuts every pair into patches: images smaller than patch_size are resized to it;
/// larger ones are cut with a sliding window (last window aligned to the border).
/// Images resize with area interpolation, masks with nearest neighbour.
PatchSet make_patches(const std::vector<SamplePair>& pairs, const PatchOptions& options);

/// Splits pairs by a ratio string such as "8:1:1" (train:val:test) after a seeded
/// shuffle. Each non-empty part gets at least one pair when possible.
struct Split {
  std::vector<SamplePair> train, val, test;
};
Split split_pairs(const std::vector<SamplePair>& pairs, const std::string& ratio, uint64_t seed);

/// Reads one mask file binarised to {0,1} (CV_8UC1) as a [H, W] uint8 tensor.
at::Tensor read_binary_mask(const std::string& path);
/// Reads an RGB image as [H, W, 3] uint8.
at::Tensor read_rgb(const std::string& path);

}  // namespace nephroseg::train
