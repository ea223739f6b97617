// nephroseg/gbmseg/classical_segmenter.h: a weight-free point-prompt segmenter
// behind gbmseg::PointPromptSegmenter (stands in for SAM when no checkpoint exists).
//
// From positive (label 1) and negative (label 0) points on one image (work done at
// work_size; every length below in pixels of the input image unless marked):
//   1. per-pixel features of the grey image (robust per-image normalisation, then
//      Gaussian-smoothed intensity, local standard deviation and Hessian eigenvalues
//      at a few scales), standardised per image and weighted by 1/sqrt(within-seed
//      variance + within_seed_lambda);
//   2. seeds: a disc of seed_radius_px around every point; each disc's mean feature
//      vector is a prototype of its class;
//   3. per-pixel score = (distance to the nearest negative prototype) -
//      (distance to the nearest positive prototype), smoothed; membrane = score > bias
//      (optionally refined by cv::grabCut / self-training: both measured worse, off);
//   4. an opening scaled to the membrane's own width removes attached foot processes
//      and leaks; a short growth into pixels whose fine intensity alone is
//      positive-like restores the edges;
//   5. clean-up: opening/closing, small enclosed holes filled, and only the connected
//      components that contain a positive seed (or are at least unseeded_min_area x
//      the largest seeded one) are kept.
// docs/demo.md lists the measurements behind the defaults.
//
// Points outside the image are ignored. With no positive point inside the image the
// mask is empty; with no negative point, the pixels farthest from the positives in
// feature space act as the negative class.
// Thread-safety: immutable after construction; segment() is const and reentrant.
#pragma once

#include <opencv2/core/mat.hpp>
#include <opencv2/core/types.hpp>

#include <string>
#include <vector>

#include "nephroseg/gbmseg/backends.h"

namespace nephroseg::gbmseg {

struct ClassicalSegmenterOptions {
  double seed_radius_px = 5.0;      ///< disc around each point used as seed pixels
  std::vector<double> intensity_scales{1.5, 3.0};
  std::vector<double> texture_scales{2.0, 4.0};
  std::vector<double> ridge_scales{4.0};
  double score_smoothing_px = 2.0;  ///< Gaussian on the score map before thresholding
  int grabcut_iterations = 0;       ///< > 0: refine with cv::grabCut (measured worse; off)
  int work_size = 280;              ///< longest side the work is done at (0 = full size)
  /// Channel weighting 1 / sqrt(within-seed variance + lambda) (standardised units);
  /// < 0 = equal weights.
  double within_seed_lambda = 0.1;
  double score_bias = 0.0;
  double width_opening = 0.7;       ///< opening radius as a fraction of half the membrane width
  int boundary_growth_px = 2;       ///< geodesic growth into fine-intensity-fg pixels (work px)
  int self_training_rounds = 0;     ///< re-estimation rounds (k-means on confident pixels)
  int self_training_clusters = 6;   ///< k-means clusters per class and round
  double self_training_margin = 0.5;  ///< |score| above which a pixel is "confident"          ///< pixels with score > bias are membrane
  int open_radius_px = 2;           ///< morphological opening radius (work pixels)
  int close_radius_px = 4;          ///< morphological closing radius (work pixels)
  bool keep_seeded_components = true;  ///< drop components without a positive seed...
  double unseeded_min_area = 0.1;   ///< ...unless >= this x the largest seeded one (0 = never)
  double max_hole_fraction = 0.002;  ///< fill enclosed holes up to this fraction of the image

  static ClassicalSegmenterOptions defaults() { return {}; }
};

/// The segmentation itself (what ClassicalSegmenter::segment calls).
///   image: CV_8UC3 RGB or CV_8UC1; points in its pixels; labels 1 / 0.
///   returns CV_8UC1 0/255 of the image's size.
cv::Mat classical_point_segmentation(const cv::Mat& image, const std::vector<cv::Point2f>& points,
                                     const std::vector<int>& labels,
                                     const ClassicalSegmenterOptions& options = {});

class ClassicalSegmenter : public gbmseg::PointPromptSegmenter {
 public:
  explicit ClassicalSegmenter(ClassicalSegmenterOptions options = ClassicalSegmenterOptions::defaults());
  std::string name() const override;
  cv::Mat segment(const cv::Mat& rgb, const std::vector<cv::Point2f>& points,
                  const std::vector<int>& labels) const override;
  const ClassicalSegmenterOptions& options() const { return options_; }

 private:
  ClassicalSegmenterOptions options_;
};

}  // namespace nephroseg::gbmseg
