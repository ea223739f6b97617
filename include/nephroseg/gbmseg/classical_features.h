// nephroseg/gbmseg/classical_features.h: a weight-free patch descriptor for GBMSeg's
// correspondence matching, behind gbmseg::PatchFeatureExtractor.
//
// GBMSeg matches reference and target patches by Euclidean nearest neighbour (with a
// backward check), so a descriptor must (1) separate membrane from non-membrane
// patches and (2) put every dimension on a comparable, image-independent scale. This
// extractor computes classical filter responses on the grey image and averages them
// over each patch:
//
//   grey image (luminance of the RGB input), robustly normalised per image:
//       z = (I - median) / (1.4826 * MAD)          (clipped to [-6, 6])
//   per-pixel maps, at the scales of ClassicalFeatureOptions (sigma in pixels of
//   the working image):
//     intensity    Gaussian-smoothed z                          (context / tone)
//     gradient     sigma * |grad G_sigma * z|                   (edges)
//     ridge        sigma^2 * Hessian eigenvalues l1 <= l2        (bands: bright / dark)
//     texture      local standard deviation of z at sigma       (homogeneous vs. grainy)
//   descriptor of patch k = mean of every map over the patch (+ the patch's own
//   intensity standard deviation), each dimension multiplied by a fixed weight
//   (ClassicalFeatureOptions::weights of each family).
//
// The per-image normalisation makes the descriptor independent of exposure and
// contrast; the scale normalisation (sigma, sigma^2) keeps responses of different
// scales on one footing. No statistics are pooled across images, so extract() can
// be called on the reference and on each target independently, and the matching
// sees the same feature space for both.
//
// Cost: separable Gaussian filters on the S x S image (about 0.15-0.25 s at S = 560 on
// 2 cores). Thread-safety: immutable after construction; extract() is const and
// reentrant.
#pragma once

#include <ATen/core/Tensor.h>
#include <opencv2/core/mat.hpp>

#include <string>
#include <vector>

#include "nephroseg/gbmseg/backends.h"

namespace nephroseg::gbmseg {

struct ClassicalFeatureOptions {
  int patch_size = 14;                              ///< side of the patches described
  std::vector<double> intensity_scales{1.0, 3.0, 7.0, 14.0, 28.0};
  std::vector<double> gradient_scales{1.0, 3.0, 7.0};
  std::vector<double> ridge_scales{3.0, 7.0, 14.0};
  std::vector<double> texture_scales{2.0, 5.0, 10.0};
  bool patch_std = true;                            ///< within-patch std of z
  /// Fixed per-family weights applied after the patch average.
  double intensity_weight = 1.0;
  double gradient_weight = 1.0;
  double ridge_weight = 1.0;
  double texture_weight = 1.0;

  /// Number of descriptor dimensions these options produce.
  int dims() const;
  /// The tuned default (see docs/demo.md for the measurements).
  static ClassicalFeatureOptions defaults() { return {}; }
};

/// Per-image robust normalisation of a grey CV_8UC1 image -> CV_32FC1 z-values
/// (median 0, MAD-based unit scale, clipped to [-6, 6]). A constant image gives 0s.
cv::Mat robust_normalise(const cv::Mat& grey);

/// Descriptors of the patches of an RGB (CV_8UC3) or grey (CV_8UC1) image whose sides
/// are multiples of options.patch_size. Returns float32 [N, D], N = (H/p) * (W/p),
/// patch k = row * (W/p) + col, D = options.dims().
at::Tensor classical_patch_features(const cv::Mat& image, const ClassicalFeatureOptions& options = {});

/// The weight-free PatchFeatureExtractor.
class ClassicalFeatureExtractor : public gbmseg::PatchFeatureExtractor {
 public:
  explicit ClassicalFeatureExtractor(ClassicalFeatureOptions options = ClassicalFeatureOptions::defaults());
  std::string name() const override;
  int patch_size() const override { return options_.patch_size; }
  at::Tensor extract(const cv::Mat& rgb) const override;
  const ClassicalFeatureOptions& options() const { return options_; }

 private:
  ClassicalFeatureOptions options_;
};

}  // namespace nephroseg::gbmseg
