// DINOv2 multi-head self-attention (all tokens attend to all tokens).
// Ref: dinov2/layers/attention.py::Attention (MemEffAttention without xFormers)
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include "core/linear.h"

namespace nephroseg::dinov2 {

struct AttentionOptions {
  int64_t dim = 768;
  int64_t num_heads = 12;
  bool qkv_bias = true;
  bool proj_bias = true;
};

/// Parameters: qkv.weight [3D, D] (+bias [3D]), proj.weight [D, D] (+bias [D]).
class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const AttentionOptions& options);

  /// x: [B, N, D] -> [B, N, D].
  at::Tensor forward(const at::Tensor& x);

 private:
  AttentionOptions options_;
  double scale_;
  nephroseg::Linear qkv_{nullptr};
  nephroseg::Linear proj_{nullptr};
};
TORCH_MODULE(Attention);

}  // namespace nephroseg::dinov2
