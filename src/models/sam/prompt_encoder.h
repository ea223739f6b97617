// SAM prompt encoder: points, boxes and low-res masks to sparse and dense embeddings.
// Ref: segment_anything/modeling/prompt_encoder.py
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/pimpl.h>

#include <utility>

#include "nephroseg/sam/sam.h"

namespace nephroseg::sam {

/// Random-Fourier positional encoding (buffer positional_encoding_gaussian_matrix
/// [2, num_pos_feats]). Ref: prompt_encoder.py::PositionEmbeddingRandom
class PositionEmbeddingRandomImpl : public torch::nn::Module {
 public:
  explicit PositionEmbeddingRandomImpl(int64_t num_pos_feats);
  /// Dense PE of the cell centres of an h x w grid: [2 * num_pos_feats, h, w].
  at::Tensor forward(int64_t h, int64_t w);
  /// coords [B, N, 2] (x, y in pixels of an image of size (H, W)) -> [B, N, 2F].
  at::Tensor forward_with_coords(const at::Tensor& coords, std::pair<int64_t, int64_t> image_size);
  /// coords in [0, 1] ([..., 2]) -> [..., 2F] = [sin, cos] of 2*pi*((2c-1) @ G).
  at::Tensor pe_encoding(const at::Tensor& coords);

  at::Tensor positional_encoding_gaussian_matrix;
};
TORCH_MODULE(PositionEmbeddingRandom);

/// Ref: prompt_encoder.py::PromptEncoder
class PromptEncoderImpl : public torch::nn::Module {
 public:
  explicit PromptEncoderImpl(const SamConfig& config);

  /// Dense PE of the image-embedding grid: [1, embed_dim, grid, grid].
  at::Tensor get_dense_pe();

  /// points: coords [B, N, 2] float (model-frame pixels) and labels [B, N] (int or
  /// float; -1/0/1), or undefined. boxes: [B, 4] or [B, 1, 4] XYXY model frame, or
  /// undefined. masks: [B, 1, 4*grid, 4*grid] logits, or undefined.
  /// Returns sparse [B, T, embed_dim] and dense [B, embed_dim, grid, grid].
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& coords, const at::Tensor& labels,
                                            const at::Tensor& boxes, const at::Tensor& masks);

  at::Tensor embed_points(const at::Tensor& points, const at::Tensor& labels, bool pad);
  at::Tensor embed_boxes(const at::Tensor& boxes);
  at::Tensor embed_masks(const at::Tensor& masks);

  int64_t embed_dim;
  std::pair<int64_t, int64_t> image_embedding_size;
  std::pair<int64_t, int64_t> input_image_size;
  PositionEmbeddingRandom pe_layer{nullptr};
  torch::nn::ModuleList point_embeddings{nullptr};  // 4 x Embedding(1, D)
  torch::nn::Embedding not_a_point_embed{nullptr};
  torch::nn::Sequential mask_downscaling{nullptr};
  torch::nn::Embedding no_mask_embed{nullptr};
};
TORCH_MODULE(PromptEncoder);

}  // namespace nephroseg::sam
