// nephroseg/train/metrics.h: GlomSAM's segmentation metrics (reference check_accuracy).
//
// pred = (logits > threshold), threshold 0.5 on the *logit* by default (the reference's
// choice; it means p > 0.622). Counts are exact integers; derived values are doubles
// computed with the reference's formulas:
//   IoU = I / U (0 when U = 0), Dice = 2I / (|P| + |G| + 1e-8), Recall = I / (I + FN + 1e-8),
//   pixel accuracy = 100 * correct / pixels.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace nephroseg::train {

struct SegmentationCounts {
  int64_t correct = 0;
  int64_t pixels = 0;
  int64_t intersection = 0;
  int64_t union_ = 0;
  int64_t pred_fg = 0;
  int64_t gt_fg = 0;
  int64_t false_negative = 0;

  double iou() const;
  double dice() const;
  double recall() const;
  double accuracy_percent() const;
  SegmentationCounts& operator+=(const SegmentationCounts& other);
};

/// Counts over all pixels of `logits` / `target` (same shape; target in {0,1}).
SegmentationCounts count_segmentation(const at::Tensor& logits, const at::Tensor& target,
                                      double threshold = 0.5);
/// Same, for an already binary prediction (nonzero = foreground).
SegmentationCounts count_binary(const at::Tensor& pred, const at::Tensor& target);

struct SegmentationMetrics {
  double accuracy_percent = 0.0;
  double iou = 0.0;
  double dice = 0.0;
  double recall = 0.0;
  int64_t num_batches = 0;
};

/// The reference check_accuracy: pixel accuracy over everything added; IoU, Dice and
/// recall computed per added batch (pixels pooled within the batch) and averaged over
/// batches. Add one image per batch to get the per-image mean.
class MetricAccumulator {
 public:
  explicit MetricAccumulator(double threshold = 0.5) : threshold_(threshold) {}
  void add_batch(const at::Tensor& logits, const at::Tensor& target);
  void add_counts(const SegmentationCounts& counts);
  SegmentationMetrics result() const;
  /// Dataset-level (micro) values over all pixels added.
  const SegmentationCounts& total() const { return total_; }
  const std::vector<SegmentationCounts>& batches() const { return batches_; }

 private:
  double threshold_;
  SegmentationCounts total_;
  std::vector<SegmentationCounts> batches_;
};

}  // namespace nephroseg::train
