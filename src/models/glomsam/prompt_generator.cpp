// Ref: SAM-Adapter-PyTorch models/mmseg/models/sam/image_encoder.py::PromptGenerator
//      (copied verbatim into GlomSAM segment_anything/modeling/image_encoder.py)
#include "models/glomsam/prompt_generator.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>

#include <cmath>

#include "nephroseg/core/error.h"

namespace nephroseg::models::glomsam {

at::Tensor fft_high_pass(const at::Tensor& x, double rate) {
  NEPHRO_CHECK(x.dim() >= 2, "fft_high_pass: expected [..., H, W], got ", x.sizes());
  const int64_t h = x.size(-2);
  const int64_t w = x.size(-1);
  const int64_t line = static_cast<int64_t>(
      std::floor(std::sqrt(static_cast<double>(h) * static_cast<double>(w) * rate) / 2.0));
  at::Tensor mask = at::zeros(x.sizes(), x.options());
  mask.narrow(-2, h / 2 - line, 2 * line).narrow(-1, w / 2 - line, 2 * line).fill_(1.0);
  const std::vector<int64_t> dims{-2, -1};
  // "forward" normalisation both ways: bit-identical to the reference.
  at::Tensor spectrum = at::fft_fftshift(at::fft_fft2(x, c10::nullopt, dims, "forward"), dims);
  spectrum = spectrum * (1.0 - mask);  // zero the centred low-frequency square
  at::Tensor back = at::fft_ifft2(at::fft_ifftshift(spectrum, dims), c10::nullopt, dims, "forward");
  return at::abs(at::real(back));
}

PatchEmbed2Impl::PatchEmbed2Impl(int64_t patch_size, int64_t in_chans, int64_t embed_dim) {
  proj = register_module(
      "proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_chans, embed_dim, patch_size)
                                    .stride(patch_size)));
}

at::Tensor PatchEmbed2Impl::forward(const at::Tensor& x) { return proj(x); }

PromptGeneratorImpl::PromptGeneratorImpl(const PromptGeneratorOptions& options)
    : options_(options) {
  NEPHRO_CHECK(options.scale_factor > 0 && options.embed_dim % options.scale_factor == 0,
               "PromptGenerator: embed_dim ", options.embed_dim,
               " is not divisible by scale_factor ", options.scale_factor);
  const int64_t d = options.hidden_dim();
  const int64_t big = options.embed_dim;
  shared_mlp = register_module("shared_mlp", torch::nn::Linear(d, big));
  embedding_generator = register_module("embedding_generator", torch::nn::Linear(big, d));
  for (int64_t i = 0; i < options.depth; ++i) {
    torch::nn::GELUOptions gelu;  // exact (erf)
    lightweight_mlp.push_back(register_module(
        "lightweight_mlp_" + std::to_string(i),
        torch::nn::Sequential(torch::nn::Linear(d, d), torch::nn::GELU(gelu))));
  }
  prompt_generator = register_module(
      "prompt_generator", PatchEmbed2(options.patch_size, options.in_chans, d));

  // The generator's own init: Linear trunc-normal(0.02, cut +-2), bias 0;
  // conv normal(0, sqrt(2 / fan_out)), fan_out = k*k*out, bias 0.
  at::NoGradGuard no_grad;
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* lin = m->as<torch::nn::Linear>()) {
      // truncated normal via rejection-free inverse CDF: clamp-resample loop.
      at::Tensor wgt = at::empty_like(lin->weight).normal_(0.0, 0.02);
      for (int iter = 0; iter < 16; ++iter) {
        at::Tensor out = wgt.abs() > 2.0;
        if (!out.any().item<bool>()) break;
        wgt = at::where(out, at::empty_like(wgt).normal_(0.0, 0.02), wgt);
      }
      lin->weight.copy_(wgt);
      if (lin->bias.defined()) lin->bias.zero_();
    } else if (auto* conv = m->as<torch::nn::Conv2d>()) {
      const auto& k = conv->options.kernel_size();
      const double fan_out = static_cast<double>((*k)[0] * (*k)[1] * conv->options.out_channels());
      conv->weight.normal_(0.0, std::sqrt(2.0 / fan_out));
      if (conv->bias.defined()) conv->bias.zero_();
    }
  }
}

at::Tensor PromptGeneratorImpl::init_embeddings(const at::Tensor& x) {
  NEPHRO_CHECK(x.dim() == 4 && x.size(3) == options_.embed_dim,
               "PromptGenerator: expected NHWC patch embedding [B, h, w, ", options_.embed_dim,
               "], got ", x.sizes());
  const int64_t b = x.size(0);
  const int64_t c = x.size(3);
  const int64_t n = x.size(1) * x.size(2);
  at::Tensor tokens;
  if (options_.token_order == EmbeddingTokenOrder::kReference) {
    // Logical-order reshape of the NHWC map to (B, C, N), then transpose.
    tokens = x.reshape({b, c, n}).permute({0, 2, 1});  // [B, N, C] (scrambled rows)
  } else {
    tokens = x.reshape({b, n, c});  // [B, N, C]
  }
  return embedding_generator(tokens);  // [B, N, d]
}

at::Tensor PromptGeneratorImpl::init_handcrafted(const at::Tensor& image) {
  return prompt_generator(fft_high_pass(image, options_.freq_ratio));  // [B, d, h, w]
}

std::vector<at::Tensor> PromptGeneratorImpl::get_prompt(const at::Tensor& handcrafted,
                                                        const at::Tensor& embedding) {
  const int64_t b = handcrafted.size(0);
  const int64_t c = handcrafted.size(1);
  at::Tensor hand_tokens =
      handcrafted.view({b, c, handcrafted.size(2) * handcrafted.size(3)}).permute({0, 2, 1});
  std::vector<at::Tensor> prompts;
  prompts.reserve(lightweight_mlp.size());
  const at::Tensor s = hand_tokens + embedding;  // [B, N, d]
  for (auto& mlp : lightweight_mlp) prompts.push_back(shared_mlp(mlp->forward(s)));  // [B, N, D]
  return prompts;
}

PromptTrace PromptGeneratorImpl::forward_trace(const at::Tensor& image,
                                               const at::Tensor& patch_embedding) {
  PromptTrace t;
  t.embedding_tokens = init_embeddings(patch_embedding);
  t.fft_image = fft_high_pass(image, options_.freq_ratio);
  t.handcrafted_conv = prompt_generator(t.fft_image);
  const int64_t b = t.handcrafted_conv.size(0);
  const int64_t c = t.handcrafted_conv.size(1);
  t.handcrafted_tokens = t.handcrafted_conv.view({b, c, -1}).permute({0, 2, 1});
  t.prompts = get_prompt(t.handcrafted_conv, t.embedding_tokens);
  return t;
}

}  // namespace nephroseg::models::glomsam
