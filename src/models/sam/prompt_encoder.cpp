#include "models/sam/prompt_encoder.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/conv.h>

#include <cmath>

#include "models/sam/common.h"
#include "nephroseg/core/error.h"

namespace nephroseg::sam {

PositionEmbeddingRandomImpl::PositionEmbeddingRandomImpl(int64_t num_pos_feats) {
  positional_encoding_gaussian_matrix =
      register_buffer("positional_encoding_gaussian_matrix", at::randn({2, num_pos_feats}));
}

// Ref: prompt_encoder.py::PositionEmbeddingRandom._pe_encoding
at::Tensor PositionEmbeddingRandomImpl::pe_encoding(const at::Tensor& coords) {
  at::Tensor c = 2 * coords - 1;                               // [..., 2]
  c = at::matmul(c, positional_encoding_gaussian_matrix);      // [..., F]
  c = (2 * M_PI) * c;
  return at::cat({at::sin(c), at::cos(c)}, -1);                // [..., 2F]
}

// Ref: prompt_encoder.py::PositionEmbeddingRandom.forward
at::Tensor PositionEmbeddingRandomImpl::forward(int64_t h, int64_t w) {
  const at::Tensor grid = at::ones({h, w}, at::kFloat);
  at::Tensor y_embed = grid.cumsum(0) - 0.5;
  at::Tensor x_embed = grid.cumsum(1) - 0.5;
  y_embed = y_embed / h;
  x_embed = x_embed / w;
  return pe_encoding(at::stack({x_embed, y_embed}, -1)).permute({2, 0, 1});  // [2F, h, w]
}

// Ref: prompt_encoder.py::PositionEmbeddingRandom.forward_with_coords
at::Tensor PositionEmbeddingRandomImpl::forward_with_coords(const at::Tensor& coords_input,
                                                            std::pair<int64_t, int64_t> image_size) {
  at::Tensor coords = coords_input.clone();
  coords.select(2, 0).copy_(coords.select(2, 0) / image_size.second);
  coords.select(2, 1).copy_(coords.select(2, 1) / image_size.first);
  return pe_encoding(coords.to(at::kFloat));  // [B, N, 2F]
}

PromptEncoderImpl::PromptEncoderImpl(const SamConfig& c) : embed_dim(c.prompt_embed_dim) {
  const int64_t grid = c.grid_size();
  image_embedding_size = {grid, grid};
  input_image_size = {c.img_size, c.img_size};
  pe_layer = register_module("pe_layer", PositionEmbeddingRandom(embed_dim / 2));
  point_embeddings = register_module("point_embeddings", torch::nn::ModuleList());
  for (int i = 0; i < 4; ++i) point_embeddings->push_back(torch::nn::Embedding(1, embed_dim));
  not_a_point_embed = register_module("not_a_point_embed", torch::nn::Embedding(1, embed_dim));
  const int64_t mic = c.mask_in_chans;
  mask_downscaling = register_module(
      "mask_downscaling",
      torch::nn::Sequential(
          torch::nn::Conv2d(torch::nn::Conv2dOptions(1, mic / 4, 2).stride(2)),
          LayerNorm2d(mic / 4, 1e-6), torch::nn::GELU(),
          torch::nn::Conv2d(torch::nn::Conv2dOptions(mic / 4, mic, 2).stride(2)),
          LayerNorm2d(mic, 1e-6), torch::nn::GELU(),
          torch::nn::Conv2d(torch::nn::Conv2dOptions(mic, embed_dim, 1))));
  no_mask_embed = register_module("no_mask_embed", torch::nn::Embedding(1, embed_dim));
}

at::Tensor PromptEncoderImpl::get_dense_pe() {
  return pe_layer->forward(image_embedding_size.first, image_embedding_size.second)
      .unsqueeze(0);  // [1, D, grid, grid]
}

// Ref: prompt_encoder.py::PromptEncoder._embed_points
at::Tensor PromptEncoderImpl::embed_points(const at::Tensor& points_in, const at::Tensor& labels_in,
                                           bool pad) {
  at::Tensor points = points_in + 0.5;  // shift to pixel centres
  at::Tensor labels = labels_in;
  if (pad) {
    const at::Tensor padding_point = at::zeros({points.size(0), 1, 2}, points.options());
    const at::Tensor padding_label = -at::ones({labels.size(0), 1}, at::kFloat);
    points = at::cat({points, padding_point}, 1);
    labels = at::cat({labels.to(at::kFloat), padding_label}, 1);
  }
  at::Tensor pe = pe_layer->forward_with_coords(points, input_image_size);  // [B, N, D]
  const auto weight = [&](int i) {
    return point_embeddings[i]->as<torch::nn::EmbeddingImpl>()->weight;  // [1, D]
  };
  const at::Tensor is_pad = (labels == -1).unsqueeze(-1);
  const at::Tensor is_neg = (labels == 0).unsqueeze(-1);
  const at::Tensor is_pos = (labels == 1).unsqueeze(-1);
  // Masked assignment as in the reference (zero, then add) keeps the same float ops.
  pe = at::where(is_pad, at::zeros_like(pe), pe);
  pe = at::where(is_pad, pe + not_a_point_embed->weight, pe);
  pe = at::where(is_neg, pe + weight(0), pe);
  pe = at::where(is_pos, pe + weight(1), pe);
  return pe;
}

// Ref: prompt_encoder.py::PromptEncoder._embed_boxes
at::Tensor PromptEncoderImpl::embed_boxes(const at::Tensor& boxes_in) {
  const at::Tensor boxes = boxes_in + 0.5;
  const at::Tensor coords = boxes.reshape({-1, 2, 2});  // [B, 2 corners, 2]
  at::Tensor corner = pe_layer->forward_with_coords(coords, input_image_size);  // [B, 2, D]
  const auto weight = [&](int i) {
    return point_embeddings[i]->as<torch::nn::EmbeddingImpl>()->weight;
  };
  corner.select(1, 0).add_(weight(2).squeeze(0));
  corner.select(1, 1).add_(weight(3).squeeze(0));
  return corner;
}

at::Tensor PromptEncoderImpl::embed_masks(const at::Tensor& masks) {
  return mask_downscaling->forward(masks);  // [B, D, grid, grid]
}

// Ref: prompt_encoder.py::PromptEncoder.forward
std::pair<at::Tensor, at::Tensor> PromptEncoderImpl::forward(const at::Tensor& coords,
                                                             const at::Tensor& labels,
                                                             const at::Tensor& boxes,
                                                             const at::Tensor& masks) {
  int64_t bs = 1;
  if (coords.defined()) {
    bs = coords.size(0);
  } else if (boxes.defined()) {
    bs = boxes.size(0);
  } else if (masks.defined()) {
    bs = masks.size(0);
  }
  at::Tensor sparse = at::empty({bs, 0, embed_dim}, at::kFloat);
  if (coords.defined()) {
    sparse = at::cat({sparse, embed_points(coords, labels, /*pad=*/!boxes.defined())}, 1);
  }
  if (boxes.defined()) sparse = at::cat({sparse, embed_boxes(boxes)}, 1);
  at::Tensor dense;
  if (masks.defined()) {
    dense = embed_masks(masks);
  } else {
    dense = no_mask_embed->weight.reshape({1, -1, 1, 1})
                .expand({bs, -1, image_embedding_size.first, image_embedding_size.second});
  }
  return {sparse, dense};
}

}  // namespace nephroseg::sam
