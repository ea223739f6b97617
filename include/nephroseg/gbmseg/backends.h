// nephroseg/gbmseg/backends.h: the two interfaces the GBMSeg pipeline runs on.
//
//   PatchFeatureExtractor  image (S x S RGB) -> one feature vector per patch [N, D]
//                          implementations: DINOv2 (weights), classical (weight-free)
//   PointPromptSegmenter   image + positive/negative points -> binary mask
//                          implementations: SAM (weights), classical (weight-free)
//
// The prompt engineering (prompts.h) only sees the features, so every combination
// of backends runs the same matching and sampling. Implementations are immutable
// after construction and safe to call from one thread at a time per instance.
#pragma once

#include <ATen/core/Tensor.h>
#include <opencv2/core/mat.hpp>

#include <memory>
#include <string>
#include <vector>

namespace nephroseg::gbmseg {

class PatchFeatureExtractor {
 public:
  virtual ~PatchFeatureExtractor() = default;
  /// Short description recorded in outputs, e.g. "dinov2 vitg14 (dinov2_vitg14_pretrain.pth)"
  /// or "classical (weight-free)".
  virtual std::string name() const = 0;
  /// Side of the square patch the features describe (14 for DINOv2).
  virtual int patch_size() const { return 14; }
  /// rgb: CV_8UC3 RGB image, S x S with S a multiple of patch_size().
  /// Returns float32 [N, D], N = (S / patch_size)^2, patch k = row * G + col.
  virtual at::Tensor extract(const cv::Mat& rgb) const = 0;
};

class PointPromptSegmenter {
 public:
  virtual ~PointPromptSegmenter() = default;
  virtual std::string name() const = 0;
  /// rgb: CV_8UC3 RGB image; points in its pixel coordinates (x = column, y = row);
  /// labels 1 (foreground) / 0 (background), same length as points.
  /// Returns a CV_8UC1 mask of the image's size with values 0 / 255.
  virtual cv::Mat segment(const cv::Mat& rgb, const std::vector<cv::Point2f>& points,
                          const std::vector<int>& labels) const = 0;
};

}  // namespace nephroseg::gbmseg
