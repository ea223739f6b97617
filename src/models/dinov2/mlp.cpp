#include "models/dinov2/mlp.h"

#include <ATen/ATen.h>

#include "core/module_init.h"

namespace nephroseg::dinov2 {

MlpImpl::MlpImpl(const MlpOptions& options) {
  fc1_ = register_module(
      "fc1", make_linear(options.in_features, options.hidden_features, options.bias));
  fc2_ = register_module(
      "fc2", make_linear(options.hidden_features, options.out_features, options.bias));
}

// Ref: dinov2/layers/mlp.py::Mlp.forward (dropout is 0 / eval)
at::Tensor MlpImpl::forward(const at::Tensor& x) {
  at::Tensor h = fc1_->forward(x);  // [B, N, hidden]
  h = at::gelu(h);                  // exact (erf) GELU, nn.GELU's default
  return fc2_->forward(h);          // [B, N, out]
}

}  // namespace nephroseg::dinov2
