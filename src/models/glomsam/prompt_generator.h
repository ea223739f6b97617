// src/models/glomsam/prompt_generator.h: the EVP / SAM-Adapter prompt generator that
// GlomSAM adds to the SAM ViT (internal module header). Spec: specs/glomsam.md §3.2.
//
// Keys (prefix image_encoder.prompt_generator.):
//   shared_mlp.{weight [D, d], bias}          Linear d -> D, shared by every block
//   embedding_generator.{weight [d, D], bias} Linear D -> d
//   lightweight_mlp_{i}.0.{weight [d, d], bias}, i = 0..depth-1 (Linear + GELU)
//   prompt_generator.proj.{weight [d, 3, p, p], bias}  handcrafted patch embed
// with d = D / scale_factor.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <cstdint>
#include <vector>

namespace nephroseg::models::glomsam {

/// How the embedding feature turns the NHWC patch embedding into tokens.
enum class EmbeddingTokenOrder {
  /// The released code: reshape the channels-last map in logical order to (B, D, h*w)
  /// and transpose, which scrambles rows (spec §3.2 quirk). Released weights use it.
  kReference,
  /// The intended per-token projection: reshape to (B, h*w, D).
  kPerToken,
};

struct PromptGeneratorOptions {
  int64_t embed_dim = 768;
  int64_t depth = 12;
  int64_t scale_factor = 32;
  double freq_ratio = 0.25;  // freq_nums: area fraction of the removed low frequencies
  int64_t img_size = 1024;
  int64_t patch_size = 16;
  int64_t in_chans = 3;
  EmbeddingTokenOrder token_order = EmbeddingTokenOrder::kReference;

  int64_t hidden_dim() const { return embed_dim / scale_factor; }
};

/// The FFT high-pass image |Re(ifft2(ifftshift(fftshift(fft2(x)) * (1 - mask))))|, with
/// the centred square of side 2*floor(sqrt(H*W*rate)/2) zeroed (DC included).
/// x: [B, C, H, W] float32 -> [B, C, H, W] float32, >= 0. Bit-identical to the reference
/// (norm="forward" both ways).
at::Tensor fft_high_pass(const at::Tensor& x, double rate);

// Ref: SAM-Adapter / GlomSAM image_encoder.py::PatchEmbed2 (conv k=p, s=p)
class PatchEmbed2Impl : public torch::nn::Module {
 public:
  PatchEmbed2Impl(int64_t patch_size, int64_t in_chans, int64_t embed_dim);
  /// [B, C, H, W] -> [B, embed_dim, H/p, W/p]
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed2);

/// Intermediate values of one prompt computation (parity tests).
struct PromptTrace {
  at::Tensor fft_image;           // [B, 3, H, W]
  at::Tensor handcrafted_conv;    // [B, d, h, w]
  at::Tensor handcrafted_tokens;  // [B, h*w, d]
  at::Tensor embedding_tokens;    // [B, h*w, d]
  std::vector<at::Tensor> prompts;  // depth x [B, h*w, D]
};

// Ref: SAM-Adapter / GlomSAM image_encoder.py::PromptGenerator
class PromptGeneratorImpl : public torch::nn::Module {
 public:
  explicit PromptGeneratorImpl(const PromptGeneratorOptions& options = {});

  /// patch_embedding: NHWC [B, h, w, D] (before pos_embed) -> [B, h*w, d]
  at::Tensor init_embeddings(const at::Tensor& patch_embedding);
  /// image: [B, 3, H, W] in [0,1] -> handcrafted conv map [B, d, h, w]
  at::Tensor init_handcrafted(const at::Tensor& image);
  /// handcrafted [B, d, h, w], embedding [B, h*w, d] -> depth prompts [B, h*w, D]
  std::vector<at::Tensor> get_prompt(const at::Tensor& handcrafted, const at::Tensor& embedding);
  /// All of the above at once.
  PromptTrace forward_trace(const at::Tensor& image, const at::Tensor& patch_embedding);

  const PromptGeneratorOptions& options() const { return options_; }
  void set_token_order(EmbeddingTokenOrder order) { options_.token_order = order; }

  torch::nn::Linear shared_mlp{nullptr};
  torch::nn::Linear embedding_generator{nullptr};
  std::vector<torch::nn::Sequential> lightweight_mlp;  // registered as lightweight_mlp_{i}
  PatchEmbed2 prompt_generator{nullptr};

 private:
  PromptGeneratorOptions options_;
};
TORCH_MODULE(PromptGenerator);

}  // namespace nephroseg::models::glomsam
