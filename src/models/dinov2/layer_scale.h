// DINOv2 LayerScale: a learned per-channel gain on each residual branch.
// Ref: dinov2/layers/layer_scale.py::LayerScale
#pragma once

#include <torch/nn/module.h>

namespace nephroseg::dinov2 {

/// Parameter: gamma [dim], initialised to init_values.
class LayerScaleImpl : public torch::nn::Module {
 public:
  LayerScaleImpl(int64_t dim, double init_values);

  /// x: [..., dim] -> x * gamma (a new tensor).
  at::Tensor forward(const at::Tensor& x);
  /// Multiplies x by gamma in place (x must not be needed elsewhere); returns x.
  at::Tensor forward_(at::Tensor x);

 private:
  at::Tensor gamma_;
};
TORCH_MODULE(LayerScale);

}  // namespace nephroseg::dinov2
