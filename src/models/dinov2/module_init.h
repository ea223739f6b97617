// Construction helpers shared by the DINOv2 modules: Linear layers whose
// initialisation can be skipped when a checkpoint will overwrite every weight.
//
// torch::nn::Linear initialises its weights in its constructor; for ViT-g/14 that is
// 1.1 G random draws and 4.5 GB touched before the checkpoint replaces them. Inside a
// SkipInitGuard, make_linear returns a Linear whose weight/bias are allocated but
// never written (the pages stay untouched until the checkpoint is bound, which swaps
// the storage), so loading costs about one checkpoint's worth of memory.
#pragma once

#include <torch/nn/modules/linear.h>

namespace nephroseg::dinov2 {

/// While alive (on this thread), make_linear skips weight initialisation.
class SkipInitGuard {
 public:
  SkipInitGuard();
  ~SkipInitGuard();
  SkipInitGuard(const SkipInitGuard&) = delete;
  SkipInitGuard& operator=(const SkipInitGuard&) = delete;

  static bool active();

 private:
  bool previous_;
};

/// torch::nn::Linear(in_features, out_features).bias(bias), initialised as LibTorch
/// does unless a SkipInitGuard is active (then the values are unspecified).
torch::nn::Linear make_linear(int64_t in_features, int64_t out_features, bool bias);

}  // namespace nephroseg::dinov2
