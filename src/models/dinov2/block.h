// One DINOv2 transformer block (pre-norm, LayerScale on both residual branches).
// Ref: dinov2/layers/block.py::Block
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/normalization.h>

#include <string>

#include "models/dinov2/attention.h"
#include "models/dinov2/layer_scale.h"
#include "models/dinov2/mlp.h"
#include "models/dinov2/swiglu_ffn.h"

namespace nephroseg::dinov2 {

struct BlockOptions {
  int64_t dim = 768;
  int64_t num_heads = 12;
  double mlp_ratio = 4.0;
  bool qkv_bias = true;
  bool proj_bias = true;
  bool ffn_bias = true;
  /// LayerScale init; 0 means no LayerScale (Identity, no ls1/ls2 keys).
  double init_values = 1.0;
  double layernorm_eps = 1e-6;
  /// "mlp" (Mlp: fc1/fc2) or "swiglufused" (SwiGLUFFNFused: w12/w3).
  std::string ffn_layer = "mlp";
};

/// Children (checkpoint names): norm1, attn, ls1, norm2, mlp, ls2.
class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(const BlockOptions& options);

  /// x: [B, N, D] -> [B, N, D].
  at::Tensor forward(const at::Tensor& x);

 private:
  torch::nn::LayerNorm norm1_{nullptr};
  Attention attn_{nullptr};
  LayerScale ls1_{nullptr};
  torch::nn::LayerNorm norm2_{nullptr};
  Mlp mlp_{nullptr};                  // set when ffn_layer == "mlp"
  SwiGLUFFNFused mlp_swiglu_{nullptr};  // set when ffn_layer == "swiglufused"
  LayerScale ls2_{nullptr};
};
TORCH_MODULE(Block);

}  // namespace nephroseg::dinov2
