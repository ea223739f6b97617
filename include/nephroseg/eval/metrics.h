// nephroseg/eval/metrics.h: segmentation metrics of one binary prediction against
// one binary truth (non-zero = foreground), and summary statistics.
//
// Definitions (TP, FP, FN, TN are pixel counts):
//   dice = 2TP / (2TP + FP + FN)        iou = TP / (TP + FP + FN)
//   precision = TP / (TP + FP)          recall = TP / (TP + FN)
//   accuracy = (TP + TN) / all pixels
//   hd95 = max of the two directed 95th percentiles (linear interpolation) of the
//          distances from each boundary pixel of one mask to the nearest boundary
//          pixel of the other, in pixels. Boundary pixel = foreground pixel with a
//          4-neighbour in the background (the image edge counts as background).
//   boundary_iou (Cheng et al., CVPR 2021) = |Pd & Gd| / |Pd | Gd| where Md are the
//          foreground pixels within d of the mask's contour (erosion by d px with a
//          3x3 kernel, image edge = background), d = max(1, round(ratio x diagonal)),
//          ratio 0.02 by default.
// Empty masks (documented edge cases):
//   both empty: dice = iou = precision = recall = boundary_iou = 1, hd95 = 0.
//   prediction empty, truth not: dice = iou = recall = boundary_iou = 0,
//     precision = 0 (nothing found), hd95 = NaN (undefined).
//   truth empty, prediction not: dice = iou = precision = boundary_iou = 0,
//     recall = 0, hd95 = NaN.
// NaN values are written as "NaN" in CSV and null in JSON, and are left out of the
// summary statistics (the summary reports how many values it used).
#pragma once

#include <opencv2/core/mat.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace nephroseg::eval {

struct MetricOptions {
  double boundary_dilation_ratio = 0.02;  ///< boundary IoU band width / image diagonal
};

struct MaskMetrics {
  double dice = 0, iou = 0, precision = 0, recall = 0, accuracy = 0, hd95 = 0, boundary_iou = 0;
  int64_t tp = 0, fp = 0, fn = 0, tn = 0;
};

/// Throws nephroseg::Error when the sizes differ or an input is not single-channel.
MaskMetrics compute_metrics(const cv::Mat& pred, const cv::Mat& truth, const MetricOptions& options = {});
double hd95(const cv::Mat& pred, const cv::Mat& truth);
double boundary_iou(const cv::Mat& pred, const cv::Mat& truth, double dilation_ratio = 0.02);

/// {"dice", "iou", "precision", "recall", "accuracy", "hd95", "boundary_iou"}.
const std::vector<std::string>& metric_names();
double metric_value(const MaskMetrics& m, const std::string& name);
/// True for metrics where larger is better (all but hd95).
bool higher_is_better(const std::string& name);

struct SummaryStats {
  int n = 0;         ///< finite values used
  int n_nan = 0;     ///< NaN values left out
  double mean = 0, sd = 0, median = 0, q25 = 0, q75 = 0, iqr = 0, min = 0, max = 0;
};
/// Sample SD (n-1); quartiles by linear interpolation (numpy's default). Empty -> NaNs.
SummaryStats summarize(const std::vector<double>& values);

}  // namespace nephroseg::eval
