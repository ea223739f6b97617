#include "models/sam/common.h"

#include <ATen/ATen.h>

#include "core/module_init.h"

namespace nephroseg::sam {

at::Tensor apply_activation(const at::Tensor& x, Activation act) {
  return act == Activation::kGELU ? at::gelu(x) : at::relu(x);
}

LayerNorm2dImpl::LayerNorm2dImpl(int64_t num_channels, double eps_) : eps(eps_) {
  weight = register_parameter("weight", at::ones({num_channels}));
  bias = register_parameter("bias", at::zeros({num_channels}));
}

// Ref: common.py::LayerNorm2d.forward (same op sequence, for bit parity)
at::Tensor LayerNorm2dImpl::forward(const at::Tensor& x) {
  const at::Tensor u = x.mean(1, /*keepdim=*/true);                   // [B, 1, H, W]
  const at::Tensor s = (x - u).pow(2).mean(1, /*keepdim=*/true);      // [B, 1, H, W]
  const at::Tensor y = (x - u) / at::sqrt(s + eps);                   // [B, C, H, W]
  return weight.view({-1, 1, 1}) * y + bias.view({-1, 1, 1});
}

MLPBlockImpl::MLPBlockImpl(int64_t embedding_dim, int64_t mlp_dim, Activation act_) : act(act_) {
  lin1 = register_module("lin1", make_linear(embedding_dim, mlp_dim));
  lin2 = register_module("lin2", make_linear(mlp_dim, embedding_dim));
}

at::Tensor MLPBlockImpl::forward(const at::Tensor& x) {
  return lin2->forward(apply_activation(lin1->forward(x), act));
}

}  // namespace nephroseg::sam
