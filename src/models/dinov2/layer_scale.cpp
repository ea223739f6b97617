#include "models/dinov2/layer_scale.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

namespace nephroseg::dinov2 {

LayerScaleImpl::LayerScaleImpl(int64_t dim, double init_values) {
  gamma_ = register_parameter("gamma", at::full({dim}, init_values, at::kFloat));
}

// Ref: dinov2/layers/layer_scale.py::LayerScale.forward
at::Tensor LayerScaleImpl::forward(const at::Tensor& x) { return x * gamma_; }

at::Tensor LayerScaleImpl::forward_(at::Tensor x) {
  // Under autograd the out-of-place product keeps the graph simple.
  if (at::GradMode::is_enabled()) return x * gamma_;
  return x.mul_(gamma_);
}

}  // namespace nephroseg::dinov2
