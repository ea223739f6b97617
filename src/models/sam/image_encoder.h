// SAM image encoder: a ViT with windowed + global attention and decomposed relative
// position embeddings, followed by a convolutional neck.
// Ref: segment_anything/modeling/image_encoder.py
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "core/linear.h"

#include <utility>
#include <vector>

#include "models/sam/common.h"
#include "nephroseg/sam/sam.h"

namespace nephroseg::sam {

/// Pads [B, H, W, C] at the bottom/right to multiples of `window_size` and cuts it
/// into windows [B * nW, ws, ws, C] (row-major over the window grid). Returns the
/// windows and the padded size (Hp, Wp). Ref: image_encoder.py::window_partition
std::pair<at::Tensor, std::pair<int64_t, int64_t>> window_partition(const at::Tensor& x,
                                                                    int64_t window_size);

/// Inverse of window_partition, cropping back to (H, W): -> [B, H, W, C].
/// Ref: image_encoder.py::window_unpartition
at::Tensor window_unpartition(const at::Tensor& windows, int64_t window_size,
                              std::pair<int64_t, int64_t> pad_hw,
                              std::pair<int64_t, int64_t> hw);

/// Relative positional embeddings for query/key sizes: [q_size, k_size, C], resizing
/// the table linearly when its length is not 2 * max(q, k) - 1.
/// Ref: image_encoder.py::get_rel_pos
at::Tensor get_rel_pos(int64_t q_size, int64_t k_size, const at::Tensor& rel_pos);

/// attn [B, q_h*q_w, k_h*k_w] + rel_h + rel_w, computed from the unscaled q
/// [B, q_h*q_w, C]. Ref: image_encoder.py::add_decomposed_rel_pos
at::Tensor add_decomposed_rel_pos(const at::Tensor& attn, const at::Tensor& q,
                                  const at::Tensor& rel_pos_h, const at::Tensor& rel_pos_w,
                                  std::pair<int64_t, int64_t> q_size,
                                  std::pair<int64_t, int64_t> k_size);

/// Token count from which inference uses RelPosAttention::forward_chunked (default
/// 1024: the global blocks of the official models). Tests set 0 to force it.
int64_t& chunked_attention_min_tokens();

/// Multi-head attention with decomposed rel-pos (parameters qkv, proj, rel_pos_h,
/// rel_pos_w). Ref: image_encoder.py::Attention
class RelPosAttentionImpl : public torch::nn::Module {
 public:
  RelPosAttentionImpl(int64_t dim, int64_t num_heads, bool qkv_bias, bool use_rel_pos,
                      std::pair<int64_t, int64_t> input_size);
  /// x: [B, H, W, C] -> [B, H, W, C]. Without autograd and with at least
  /// chunked_attention_min_tokens() tokens, runs forward_chunked (same result to
  /// float noise).
  at::Tensor forward(const at::Tensor& x);
  /// Inference path: attention in bands of query rows per head, with the rel-pos
  /// add and softmax done in place on a small reused logits buffer.
  at::Tensor forward_chunked(const at::Tensor& x);
  /// The attention core from the split qkv [3, B*nH, H*W, hd] to the heads merged
  /// back, before proj: -> [B, H, W, C].
  at::Tensor attend(const at::Tensor& qkv_all, int64_t B, int64_t H, int64_t W);

  int64_t num_heads;
  double scale;
  bool use_rel_pos;
  nephroseg::Linear qkv{nullptr}, proj{nullptr};
  at::Tensor rel_pos_h, rel_pos_w;  // [2 * input_size - 1, head_dim]
};
TORCH_MODULE(RelPosAttention);

/// Transformer block (norm1, attn, norm2, mlp); window_size 0 = global attention.
/// Ref: image_encoder.py::Block
class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(int64_t dim, int64_t num_heads, double mlp_ratio, bool qkv_bias, double eps,
            bool use_rel_pos, int64_t window_size, std::pair<int64_t, int64_t> input_size);
  /// x: [B, H, W, C] -> [B, H, W, C]. Windowed blocks without autograd run
  /// forward_windowed_inference (same result to float noise).
  at::Tensor forward(const at::Tensor& x);
  at::Tensor forward_windowed_inference(const at::Tensor& x);

  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  RelPosAttention attn{nullptr};
  MLPBlock mlp{nullptr};
  int64_t window_size;
};
TORCH_MODULE(Block);

/// Image to patch embedding (conv `proj`). Ref: image_encoder.py::PatchEmbed
class PatchEmbedImpl : public torch::nn::Module {
 public:
  PatchEmbedImpl(int64_t patch_size, int64_t in_chans, int64_t embed_dim);
  /// x: [B, 3, H, W] -> [B, H/p, W/p, embed_dim]
  at::Tensor forward(const at::Tensor& x);

  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

/// Ref: image_encoder.py::ImageEncoderViT (parameters pos_embed, patch_embed, blocks,
/// neck).
class ImageEncoderViTImpl : public torch::nn::Module {
 public:
  explicit ImageEncoderViTImpl(const SamConfig& config);
  /// x: [B, 3, img_size, img_size] normalised -> [B, out_chans, grid, grid].
  /// When `debug` is given it receives the patch-embed output and every block's
  /// output (NHWC [B, grid, grid, C]).
  at::Tensor forward(const at::Tensor& x, std::vector<at::Tensor>* debug = nullptr);

  int64_t img_size;
  at::Tensor pos_embed;  // [1, grid, grid, C]
  PatchEmbed patch_embed{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::Sequential neck{nullptr};
};
TORCH_MODULE(ImageEncoderViT);

}  // namespace nephroseg::sam
