// SAM mask decoder: two-way transformer over prompt tokens and the image embedding,
// upscaling, hypernetwork mask heads and an IoU head.
// Ref: segment_anything/modeling/mask_decoder.py
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <utility>

#include "models/sam/transformer.h"
#include "nephroseg/sam/sam.h"

namespace nephroseg::sam {

/// num_layers Linear layers (`layers.{i}`) with ReLU between them.
/// Ref: mask_decoder.py::MLP
class MLPImpl : public torch::nn::Module {
 public:
  MLPImpl(int64_t input_dim, int64_t hidden_dim, int64_t output_dim, int64_t num_layers,
          bool sigmoid_output = false);
  /// x: [..., input_dim] -> [..., output_dim]
  at::Tensor forward(const at::Tensor& x);

  torch::nn::ModuleList layers{nullptr};
  bool sigmoid_output;
};
TORCH_MODULE(MLP);

/// Intermediates of one decoder pass (parity tests and debugging).
struct MaskDecoderDebug {
  at::Tensor tokens_out;          // [B, 5 + T, D] transformer queries
  at::Tensor image_out;           // [B, grid*grid, D] transformer keys
  at::Tensor upscaled_embedding;  // [B, D/8, 4*grid, 4*grid]
  at::Tensor all_mask_logits;     // [B, num_mask_tokens, 4*grid, 4*grid]
  at::Tensor all_iou;             // [B, num_mask_tokens]
};

/// Ref: mask_decoder.py::MaskDecoder
class MaskDecoderImpl : public torch::nn::Module {
 public:
  explicit MaskDecoderImpl(const SamConfig& config);

  /// image_embeddings [1 or B, D, g, g], image_pe [1, D, g, g], sparse [B, T, D],
  /// dense [B, D, g, g] -> (masks [B, C, 4g, 4g], iou [B, C]) with C = 3 when
  /// multimask_output else 1.
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& image_embeddings,
                                            const at::Tensor& image_pe,
                                            const at::Tensor& sparse_prompt_embeddings,
                                            const at::Tensor& dense_prompt_embeddings,
                                            bool multimask_output,
                                            MaskDecoderDebug* debug = nullptr);

  /// All mask tokens: (masks [B, num_mask_tokens, 4g, 4g], iou [B, num_mask_tokens]).
  std::pair<at::Tensor, at::Tensor> predict_masks(const at::Tensor& image_embeddings,
                                                  const at::Tensor& image_pe,
                                                  const at::Tensor& sparse_prompt_embeddings,
                                                  const at::Tensor& dense_prompt_embeddings,
                                                  MaskDecoderDebug* debug);

  int64_t transformer_dim;
  int64_t num_mask_tokens;
  TwoWayTransformer transformer{nullptr};
  torch::nn::Embedding iou_token{nullptr}, mask_tokens{nullptr};
  torch::nn::Sequential output_upscaling{nullptr};
  torch::nn::ModuleList output_hypernetworks_mlps{nullptr};
  MLP iou_prediction_head{nullptr};
};
TORCH_MODULE(MaskDecoder);

}  // namespace nephroseg::sam
