// DINOv2 patch embedding: a stride-14 convolution that turns an image into tokens.
// Ref: dinov2/layers/patch_embed.py::PatchEmbed
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>

namespace nephroseg::dinov2 {

struct PatchEmbedOptions {
  int64_t patch_size = 14;
  int64_t in_chans = 3;
  int64_t embed_dim = 768;
};

/// Parameters: proj.weight [D, C, P, P], proj.bias [D] (norm is Identity in DINOv2).
class PatchEmbedImpl : public torch::nn::Module {
 public:
  explicit PatchEmbedImpl(const PatchEmbedOptions& options);

  /// x: [B, C, H, W] with H, W multiples of patch_size -> [B, (H/P)*(W/P), D], tokens in
  /// row-major order over the patch grid.
  at::Tensor forward(const at::Tensor& x);

  const PatchEmbedOptions& options() const { return options_; }

 private:
  PatchEmbedOptions options_;
  torch::nn::Conv2d proj_{nullptr};
};
TORCH_MODULE(PatchEmbed);

}  // namespace nephroseg::dinov2
