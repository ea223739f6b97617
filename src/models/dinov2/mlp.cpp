#include "models/dinov2/mlp.h"

#include <ATen/ATen.h>

namespace nephroseg::dinov2 {

MlpImpl::MlpImpl(const MlpOptions& options) {
  fc1_ = register_module(
      "fc1", torch::nn::Linear(torch::nn::LinearOptions(options.in_features, options.hidden_features)
                                   .bias(options.bias)));
  fc2_ = register_module(
      "fc2", torch::nn::Linear(torch::nn::LinearOptions(options.hidden_features, options.out_features)
                                   .bias(options.bias)));
}

// Ref: dinov2/layers/mlp.py::Mlp.forward (dropout is 0 / eval)
at::Tensor MlpImpl::forward(const at::Tensor& x) {
  at::Tensor h = fc1_->forward(x);  // [B, N, hidden]
  h = at::gelu(h);                  // exact (erf) GELU, nn.GELU's default
  return fc2_->forward(h);          // [B, N, out]
}

}  // namespace nephroseg::dinov2
