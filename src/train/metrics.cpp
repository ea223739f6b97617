// Ref: GlomSAM utils.py::check_accuracy
#include "nephroseg/train/metrics.h"

#include <ATen/ATen.h>

#include "nephroseg/core/error.h"

namespace nephroseg::train {

double SegmentationCounts::iou() const {
  return union_ > 0 ? static_cast<double>(intersection) / static_cast<double>(union_) : 0.0;
}
double SegmentationCounts::dice() const {
  return 2.0 * static_cast<double>(intersection) /
         (static_cast<double>(pred_fg) + static_cast<double>(gt_fg) + 1e-8);
}
double SegmentationCounts::recall() const {
  return static_cast<double>(intersection) /
         (static_cast<double>(intersection) + static_cast<double>(false_negative) + 1e-8);
}
double SegmentationCounts::accuracy_percent() const {
  return pixels > 0 ? static_cast<double>(correct) / static_cast<double>(pixels) * 100.0 : 0.0;
}
SegmentationCounts& SegmentationCounts::operator+=(const SegmentationCounts& o) {
  correct += o.correct;
  pixels += o.pixels;
  intersection += o.intersection;
  union_ += o.union_;
  pred_fg += o.pred_fg;
  gt_fg += o.gt_fg;
  false_negative += o.false_negative;
  return *this;
}

SegmentationCounts count_binary(const at::Tensor& pred, const at::Tensor& target) {
  NEPHRO_CHECK(pred.sizes() == target.sizes(), "metrics: prediction shape ", pred.sizes(),
               " differs from target shape ", target.sizes());
  at::NoGradGuard no_grad;
  const at::Tensor p = pred.ne(0);
  const at::Tensor g = target.ne(0);
  SegmentationCounts c;
  c.pixels = p.numel();
  c.correct = p.eq(g).sum().item<int64_t>();
  c.intersection = (p & g).sum().item<int64_t>();
  c.union_ = (p | g).sum().item<int64_t>();
  c.pred_fg = p.sum().item<int64_t>();
  c.gt_fg = g.sum().item<int64_t>();
  c.false_negative = (g & p.logical_not()).sum().item<int64_t>();
  return c;
}

SegmentationCounts count_segmentation(const at::Tensor& logits, const at::Tensor& target,
                                      double threshold) {
  at::NoGradGuard no_grad;
  return count_binary(logits.detach().gt(threshold), target);
}

void MetricAccumulator::add_batch(const at::Tensor& logits, const at::Tensor& target) {
  add_counts(count_segmentation(logits, target, threshold_));
}

void MetricAccumulator::add_counts(const SegmentationCounts& counts) {
  total_ += counts;
  batches_.push_back(counts);
}

SegmentationMetrics MetricAccumulator::result() const {
  SegmentationMetrics m;
  m.num_batches = static_cast<int64_t>(batches_.size());
  m.accuracy_percent = total_.accuracy_percent();
  if (batches_.empty()) return m;
  for (const auto& b : batches_) {
    m.iou += b.iou();
    m.dice += b.dice();
    m.recall += b.recall();
  }
  const double n = static_cast<double>(batches_.size());
  m.iou /= n;
  m.dice /= n;
  m.recall /= n;
  return m;
}

}  // namespace nephroseg::train
