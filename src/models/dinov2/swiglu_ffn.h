// DINOv2 SwiGLU feed-forward network of ViT-g/14 ("swiglufused"): one fused input
// projection w12 whose halves are the gate and the value, then w3.
// Ref: dinov2/layers/swiglu_ffn.py::SwiGLUFFNFused (SwiGLUFFN without xFormers)
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include "core/linear.h"

namespace nephroseg::dinov2 {

struct SwiGLUFFNFusedOptions {
  int64_t in_features = 1536;
  /// The requested hidden size (embed_dim * mlp_ratio); the layer itself uses
  /// swiglu_hidden(hidden_features) = (int(hidden * 2 / 3) + 7) // 8 * 8.
  int64_t hidden_features = 6144;
  int64_t out_features = 1536;
  bool bias = true;
};

/// The hidden width actually used by SwiGLUFFNFused for a requested hidden size.
int64_t swiglu_hidden(int64_t hidden_features);

/// Parameters: w12.weight [2*Hs, in] (+bias), w3.weight [out, Hs] (+bias), with
/// Hs = swiglu_hidden(hidden_features) (4096 for ViT-g/14).
class SwiGLUFFNFusedImpl : public torch::nn::Module {
 public:
  explicit SwiGLUFFNFusedImpl(const SwiGLUFFNFusedOptions& options);

  /// x: [B, N, in] -> [B, N, out].
  at::Tensor forward(const at::Tensor& x);

 private:
  nephroseg::Linear w12_{nullptr};
  nephroseg::Linear w3_{nullptr};
};
TORCH_MODULE(SwiGLUFFNFused);

}  // namespace nephroseg::dinov2
