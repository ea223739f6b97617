// nephroseg/gbmseg/dice.h: the authors' Dice evaluation (tools/dice.py, 2023) and the
// textbook per-image Dice it is built on.
#pragma once

#include <opencv2/core/mat.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace nephroseg::gbmseg {

/// Pixel counts of one (ground truth, prediction) pair; foreground = value exactly 255.
struct DiceCounts {
  int64_t intersection = 0;  // I: both 255
  int64_t union_count = 0;   // U: either 255
  /// 2I / (U + I) (= 2|A n B| / (|A| + |B|)); 0 when U = 0 (authors' convention).
  double dice() const;
};

/// Counts for two equally sized CV_8UC1 masks (throws nephroseg::Error otherwise).
DiceCounts dice_counts(const cv::Mat& ground_truth, const cv::Mat& prediction);

struct DiceSummary {
  std::vector<double> per_image;  // textbook Dice of each pair, in input order
  double textbook_mean = 0.0;     // plain mean of per_image (0 for no images)
  /// tools/dice.py: an image with U > 0 enters the averaged list TWICE, one with U = 0
  /// (Dice 0) once; this is that weighted mean.
  double authors_mean = 0.0;
  double authors_miou = 0.0;      // authors' "mIoU" = D / (2 - D) of authors_mean
};

/// Evaluates pairs (ground truth, prediction) of CV_8UC1 masks.
// Ref: tools/dice.py (06dae0b)
DiceSummary evaluate_dice(const std::vector<cv::Mat>& ground_truths,
                          const std::vector<cv::Mat>& predictions);

}  // namespace nephroseg::gbmseg
