// src/models/glomsam/image_encoder.h: GlomSAM's ImageEncoderViT (internal header):
// the SAM ViT (reusing models/sam's PatchEmbed, Block, LayerNorm2d), plus the prompt
// generator, the CNN branch and the SE fusion. Spec: specs/glomsam.md §3.
//
// Keys (prefix image_encoder.): pos_embed, patch_embed.*, blocks.{i}.*, neck.{0..3}.*,
// prompt_generator.*, cnn_branch.*, fusion_module.* (state_dict order of the reference).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>

#include <vector>

#include "models/glomsam/cnn_branch.h"
#include "models/glomsam/prompt_generator.h"
#include "models/sam/image_encoder.h"
#include "nephroseg/glomsam/glomsam.h"

namespace nephroseg::models::glomsam {

/// Intermediates of one encoder pass (parity tests).
struct EncoderTrace {
  at::Tensor patch_embed;   // [B, g, g, D] before pos_embed
  at::Tensor pos_added;     // [B, g, g, D]
  PromptTrace prompt;
  std::vector<at::Tensor> blocks;  // NHWC outputs of each block
  at::Tensor neck;          // [B, C, g, g]
  at::Tensor cnn_adapter;   // [B, C, g/2, g/2]
  at::Tensor output;        // [B, C, g, g] fused embedding E
};

// Ref: GlomSAM segment_anything/modeling/image_encoder.py::ImageEncoderViT
class GlomImageEncoderImpl : public torch::nn::Module {
 public:
  explicit GlomImageEncoderImpl(const nephroseg::glomsam::GlomSamConfig& config);

  /// image [B, 3, S, S] in [0,1] -> fused embedding [B, C, g, g].
  at::Tensor forward(const at::Tensor& image);
  /// Same, recording intermediates when `trace` is given.
  at::Tensor forward_traced(const at::Tensor& image, EncoderTrace* trace);

  /// The ViT parameters (patch_embed, pos_embed, blocks, neck): frozen in GlomSAM.
  std::vector<at::Tensor> vit_parameters() const;

  at::Tensor pos_embed;  // [1, g, g, D]
  sam::PatchEmbed patch_embed{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::Sequential neck{nullptr};
  PromptGenerator prompt_generator{nullptr};  // null when config.prompt_generator is false
  CnnBranch cnn_branch{nullptr};              // null (with fusion_module) when config.cnn_branch is false
  FusionWithSe fusion_module{nullptr};
};
TORCH_MODULE(GlomImageEncoder);

}  // namespace nephroseg::models::glomsam
