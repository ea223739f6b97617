#include "models/dinov2/block.h"

#include <ATen/ATen.h>

#include "nephroseg/core/error.h"

namespace nephroseg::dinov2 {

BlockImpl::BlockImpl(const BlockOptions& options) {
  const int64_t dim = options.dim;
  auto ln_options = torch::nn::LayerNormOptions({dim}).eps(options.layernorm_eps);
  norm1_ = register_module("norm1", torch::nn::LayerNorm(ln_options));
  attn_ = register_module(
      "attn", Attention(AttentionOptions{dim, options.num_heads, options.qkv_bias, options.proj_bias}));
  if (options.init_values > 0) {
    ls1_ = register_module("ls1", LayerScale(dim, options.init_values));
  }
  norm2_ = register_module("norm2", torch::nn::LayerNorm(ln_options));
  // Ref: dinov2/models/vision_transformer.py::DinoVisionTransformer.__init__
  // (mlp_hidden_dim = int(embed_dim * mlp_ratio)).
  const auto hidden = static_cast<int64_t>(static_cast<double>(dim) * options.mlp_ratio);
  if (options.ffn_layer == "mlp") {
    mlp_ = register_module("mlp", Mlp(MlpOptions{dim, hidden, dim, options.ffn_bias}));
  } else if (options.ffn_layer == "swiglufused" || options.ffn_layer == "swiglu") {
    mlp_swiglu_ = register_module(
        "mlp", SwiGLUFFNFused(SwiGLUFFNFusedOptions{dim, hidden, dim, options.ffn_bias}));
  } else {
    NEPHRO_FAIL("DINOv2 block: unsupported ffn_layer \"", options.ffn_layer,
                "\" (expected \"mlp\" or \"swiglufused\")");
  }
  if (options.init_values > 0) {
    ls2_ = register_module("ls2", LayerScale(dim, options.init_values));
  }
}

// Ref: dinov2/layers/block.py::Block.forward (eval: no drop-path)
at::Tensor BlockImpl::forward(const at::Tensor& x) {
  // The branch outputs are fresh tensors, so LayerScale can scale them in place.
  at::Tensor a = attn_->forward(norm1_->forward(x));  // [B, N, D]
  if (ls1_) a = ls1_->forward_(a);
  at::Tensor y = x + a;
  at::Tensor h = norm2_->forward(y);
  at::Tensor f = mlp_ ? mlp_->forward(h) : mlp_swiglu_->forward(h);  // [B, N, D]
  if (ls2_) f = ls2_->forward_(f);
  return y + f;
}

}  // namespace nephroseg::dinov2
