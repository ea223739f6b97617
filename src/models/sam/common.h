// Building blocks shared by the SAM modules. Ref: segment_anything/modeling/common.py
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "core/linear.h"

namespace nephroseg::sam {

enum class Activation { kGELU, kReLU };

/// Applies the activation (exact erf GELU or ReLU).
at::Tensor apply_activation(const at::Tensor& x, Activation act);

/// LayerNorm over the channel dimension of an NCHW tensor:
/// (x - mean_c) / sqrt(biased var_c + eps) * weight + bias. Parameters `weight`,
/// `bias` [C]. Ref: common.py::LayerNorm2d
class LayerNorm2dImpl : public torch::nn::Module {
 public:
  explicit LayerNorm2dImpl(int64_t num_channels, double eps = 1e-6);
  /// x: [B, C, H, W] -> [B, C, H, W]
  at::Tensor forward(const at::Tensor& x);

  at::Tensor weight, bias;
  double eps;
};
TORCH_MODULE(LayerNorm2d);

/// lin2(act(lin1(x))). Ref: common.py::MLPBlock
class MLPBlockImpl : public torch::nn::Module {
 public:
  MLPBlockImpl(int64_t embedding_dim, int64_t mlp_dim, Activation act);
  /// x: [..., embedding_dim] -> [..., embedding_dim]
  at::Tensor forward(const at::Tensor& x);

  nephroseg::Linear lin1{nullptr}, lin2{nullptr};
  Activation act;
};
TORCH_MODULE(MLPBlock);

}  // namespace nephroseg::sam
