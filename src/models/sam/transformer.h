// SAM two-way transformer: tokens attend to the image and the image attends back.
// Ref: segment_anything/modeling/transformer.py
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <utility>

#include "models/sam/common.h"

namespace nephroseg::sam {

/// Attention with separate q/k/v/out projections that may downscale the internal
/// width (embedding_dim / downsample_rate). Ref: transformer.py::Attention
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t embedding_dim, int64_t num_heads, int64_t downsample_rate = 1);
  /// q [B, Nq, D], k [B, Nk, D], v [B, Nk, D] -> [B, Nq, D]
  at::Tensor forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

  int64_t num_heads;
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
};
TORCH_MODULE(Attention);

/// Self-attention on tokens, cross-attention both ways, MLP on tokens.
/// Ref: transformer.py::TwoWayAttentionBlock
class TwoWayAttentionBlockImpl : public torch::nn::Module {
 public:
  TwoWayAttentionBlockImpl(int64_t embedding_dim, int64_t num_heads, int64_t mlp_dim,
                           int64_t attention_downsample_rate, bool skip_first_layer_pe);
  /// queries [B, Nq, D], keys [B, Nk, D], query_pe like queries, key_pe like keys.
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& queries, const at::Tensor& keys,
                                            const at::Tensor& query_pe, const at::Tensor& key_pe);

  Attention self_attn{nullptr}, cross_attn_token_to_image{nullptr},
      cross_attn_image_to_token{nullptr};
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr}, norm4{nullptr};
  MLPBlock mlp{nullptr};
  bool skip_first_layer_pe;
};
TORCH_MODULE(TwoWayAttentionBlock);

/// Ref: transformer.py::TwoWayTransformer
class TwoWayTransformerImpl : public torch::nn::Module {
 public:
  TwoWayTransformerImpl(int64_t depth, int64_t embedding_dim, int64_t num_heads, int64_t mlp_dim,
                        int64_t attention_downsample_rate);
  /// image_embedding [B, D, h, w], image_pe [B, D, h, w], point_embedding [B, Nq, D]
  /// -> (queries [B, Nq, D], keys [B, h*w, D]).
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& image_embedding,
                                            const at::Tensor& image_pe,
                                            const at::Tensor& point_embedding);

  torch::nn::ModuleList layers{nullptr};
  Attention final_attn_token_to_image{nullptr};
  torch::nn::LayerNorm norm_final_attn{nullptr};
};
TORCH_MODULE(TwoWayTransformer);

}  // namespace nephroseg::sam
