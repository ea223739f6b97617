// The DINOv2 backbone: patch embedding, cls/register tokens, resampled position
// embedding, transformer blocks and the final LayerNorm (the head is Identity).
// Ref: dinov2/models/vision_transformer.py::DinoVisionTransformer (block_chunks=0)
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/normalization.h>

#include <vector>

#include "models/dinov2/block.h"
#include "models/dinov2/patch_embed.h"
#include "nephroseg/dinov2/dinov2.h"

namespace nephroseg::dinov2 {

/// State-dict keys (D = embed_dim): cls_token [1,1,D], pos_embed [1,1+M*M,D],
/// register_tokens [1,R,D] (R > 0 only), mask_token [1,D], patch_embed.proj.*,
/// blocks.{i}.*, norm.weight/bias [D].
class DinoVisionTransformerImpl : public torch::nn::Module {
 public:
  explicit DinoVisionTransformerImpl(const Dinov2Config& config);

  /// x: [B, 3, H, W] -> Dinov2Output (see the public header).
  Dinov2Output forward_features(const at::Tensor& x);

  /// Tokens after patch embedding, cls, position embedding and registers:
  /// [B, 1 + R + h*w, D].
  at::Tensor prepare_tokens(const at::Tensor& x);

  /// Position embedding for a grid_h x grid_w input: [1, 1 + grid_h*grid_w, D].
  at::Tensor interpolate_pos_encoding(int64_t grid_h, int64_t grid_w);

  /// Outputs of the blocks whose indices are in `take` (block order), optionally
  /// normed, split into patch tokens ([B, h*w, D] or [B, D, h, w]) and cls tokens.
  std::vector<Dinov2IntermediateLayer> get_intermediate_layers(const at::Tensor& x,
                                                               const std::vector<int64_t>& take,
                                                               bool reshape, bool norm);

  const Dinov2Config& config() const { return config_; }

 private:
  void check_input(const at::Tensor& x) const;

  Dinov2Config config_;
  at::Tensor cls_token_;        // [1, 1, D]
  at::Tensor pos_embed_;        // [1, 1 + M*M, D]
  at::Tensor register_tokens_;  // [1, R, D] or undefined
  at::Tensor mask_token_;       // [1, D] (training only)
  PatchEmbed patch_embed_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  std::vector<Block> block_list_;
  torch::nn::LayerNorm norm_{nullptr};
};
TORCH_MODULE(DinoVisionTransformer);

}  // namespace nephroseg::dinov2
