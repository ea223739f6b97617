#include "models/dinov2/vision_transformer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "nephroseg/core/error.h"

namespace nephroseg::dinov2 {

DinoVisionTransformerImpl::DinoVisionTransformerImpl(const Dinov2Config& config)
    : config_(config) {
  config_.validate();
  const int64_t D = config_.embed_dim;
  const int64_t M = config_.pos_embed_grid();
  // Own parameters first, as in Python's state_dict order.
  cls_token_ = register_parameter("cls_token", at::zeros({1, 1, D}));
  pos_embed_ = register_parameter("pos_embed", at::zeros({1, 1 + M * M, D}));
  if (config_.num_register_tokens > 0) {
    register_tokens_ =
        register_parameter("register_tokens", at::zeros({1, config_.num_register_tokens, D}));
  }
  mask_token_ = register_parameter("mask_token", at::zeros({1, D}));
  patch_embed_ = register_module(
      "patch_embed", PatchEmbed(PatchEmbedOptions{config_.patch_size, config_.in_chans, D}));

  BlockOptions block_options;
  block_options.dim = D;
  block_options.num_heads = config_.num_heads;
  block_options.mlp_ratio = config_.mlp_ratio;
  block_options.qkv_bias = config_.qkv_bias;
  block_options.proj_bias = config_.proj_bias;
  block_options.ffn_bias = config_.ffn_bias;
  block_options.init_values = config_.init_values;
  block_options.layernorm_eps = config_.layernorm_eps;
  block_options.ffn_layer = config_.ffn_layer;
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < config_.depth; ++i) {
    Block block(block_options);
    blocks_->push_back(block);
    block_list_.push_back(block);
  }
  norm_ = register_module(
      "norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D}).eps(config_.layernorm_eps)));
}

void DinoVisionTransformerImpl::check_input(const at::Tensor& x) const {
  NEPHRO_CHECK(x.defined() && x.dim() == 4, "DINOv2: expected normalised images [B, ",
               config_.in_chans, ", H, W], got ",
               x.defined() ? c10::str(x.sizes()) : std::string("an undefined tensor"));
  NEPHRO_CHECK(x.size(1) == config_.in_chans, "DINOv2: expected ", config_.in_chans,
               " channels, got images of shape ", x.sizes());
  NEPHRO_CHECK(x.scalar_type() == at::kFloat, "DINOv2: expected float32 images, got ",
               x.scalar_type());
  const int64_t p = config_.patch_size;
  NEPHRO_CHECK(x.size(0) > 0 && x.size(2) > 0 && x.size(3) > 0 && x.size(2) % p == 0 &&
                   x.size(3) % p == 0,
               "DINOv2: image height ", x.size(2), " and width ", x.size(3),
               " must be positive multiples of the patch size ", p,
               " (resize or pad the image first)");
}

// Ref: dinov2/models/vision_transformer.py::DinoVisionTransformer.interpolate_pos_encoding
// (the Python names its arguments w, h but passes H first; here grid_h is H / 14).
at::Tensor DinoVisionTransformerImpl::interpolate_pos_encoding(int64_t grid_h, int64_t grid_w) {
  const int64_t N = pos_embed_.size(1) - 1;
  const int64_t D = pos_embed_.size(2);
  if (grid_h * grid_w == N && grid_h == grid_w) return pos_embed_;  // native size
  const auto M = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(N))));
  NEPHRO_CHECK(M * M == N, "DINOv2: pos_embed has ", N, " patch positions, not a square grid");

  at::Tensor pos = pos_embed_.to(at::kFloat);
  at::Tensor class_pos = pos.select(1, 0).unsqueeze(0);  // [1, 1, D]
  at::Tensor patch_pos = pos.narrow(1, 1, N)
                             .reshape({1, M, M, D})
                             .permute({0, 3, 1, 2});  // [1, D, M, M]
  at::Tensor resampled;
  const bool antialias = config_.interpolate_antialias;
  if (config_.interpolate_offset != 0.0) {
    // interpolate(scale_factor=(sh, sw)): the output size is floor(M * s) and the kernel
    // maps coordinates with the given scale (not with M / grid).
    const double sh = (static_cast<double>(grid_h) + config_.interpolate_offset) / M;
    const double sw = (static_cast<double>(grid_w) + config_.interpolate_offset) / M;
    const auto oh = static_cast<int64_t>(std::floor(static_cast<double>(M) * sh));
    const auto ow = static_cast<int64_t>(std::floor(static_cast<double>(M) * sw));
    NEPHRO_CHECK(oh == grid_h && ow == grid_w, "DINOv2: interpolate_offset ",
                 config_.interpolate_offset, " gives a ", oh, "x", ow,
                 " position grid for a ", grid_h, "x", grid_w, " patch grid");
    resampled = antialias ? at::_upsample_bicubic2d_aa(patch_pos, {oh, ow},
                                                       /*align_corners=*/false, sh, sw)
                          : at::upsample_bicubic2d(patch_pos, {oh, ow},
                                                   /*align_corners=*/false, sh, sw);
  } else {
    resampled = antialias ? at::_upsample_bicubic2d_aa(patch_pos, {grid_h, grid_w},
                                                       /*align_corners=*/false)
                          : at::upsample_bicubic2d(patch_pos, {grid_h, grid_w},
                                                   /*align_corners=*/false);
  }
  resampled = resampled.permute({0, 2, 3, 1}).reshape({1, grid_h * grid_w, D});  // [1, h*w, D]
  return at::cat({class_pos, resampled}, /*dim=*/1).to(pos_embed_.scalar_type());  // [1, 1+h*w, D]
}

// Ref: dinov2/models/vision_transformer.py::DinoVisionTransformer.prepare_tokens_with_masks
at::Tensor DinoVisionTransformerImpl::prepare_tokens(const at::Tensor& x) {
  check_input(x);
  const int64_t B = x.size(0);
  const int64_t grid_h = x.size(2) / config_.patch_size;
  const int64_t grid_w = x.size(3) / config_.patch_size;
  at::Tensor t = patch_embed_->forward(x);                          // [B, h*w, D]
  t = at::cat({cls_token_.expand({B, -1, -1}), t}, /*dim=*/1);      // [B, 1+h*w, D]
  t = t + interpolate_pos_encoding(grid_h, grid_w);
  if (register_tokens_.defined()) {
    // Registers go after the cls token and get no position embedding.
    t = at::cat({t.narrow(1, 0, 1), register_tokens_.expand({B, -1, -1}),
                 t.narrow(1, 1, grid_h * grid_w)},
                /*dim=*/1);  // [B, 1+R+h*w, D]
  }
  return t;
}

// Ref: dinov2/models/vision_transformer.py::DinoVisionTransformer.forward_features
Dinov2Output DinoVisionTransformerImpl::forward_features(const at::Tensor& x) {
  const int64_t grid_h = x.dim() == 4 ? x.size(2) / config_.patch_size : 0;
  const int64_t grid_w = x.dim() == 4 ? x.size(3) / config_.patch_size : 0;
  at::Tensor t = prepare_tokens(x);  // validates x
  for (auto& block : block_list_) t = block->forward(t);
  at::Tensor tn = norm_->forward(t);  // [B, 1+R+h*w, D]
  const int64_t R = config_.num_register_tokens;
  Dinov2Output out;
  out.x_norm_clstoken = tn.select(1, 0);                         // [B, D]
  out.x_norm_regtokens = tn.narrow(1, 1, R);                     // [B, R, D]
  out.x_norm_patchtokens = tn.narrow(1, 1 + R, grid_h * grid_w);  // [B, h*w, D]
  out.x_prenorm = t;
  out.grid_h = grid_h;
  out.grid_w = grid_w;
  return out;
}

// Ref: dinov2/models/vision_transformer.py::DinoVisionTransformer.get_intermediate_layers
// and _get_intermediate_layers_not_chunked.
std::vector<Dinov2IntermediateLayer> DinoVisionTransformerImpl::get_intermediate_layers(
    const at::Tensor& x, const std::vector<int64_t>& take, bool reshape, bool norm) {
  for (int64_t i : take) {
    NEPHRO_CHECK(i >= 0 && i < config_.depth, "DINOv2: block index ", i,
                 " out of range for a model with ", config_.depth, " blocks");
  }
  NEPHRO_CHECK(!take.empty(), "DINOv2: get_intermediate_layers needs at least one block");
  at::Tensor t = prepare_tokens(x);
  const int64_t B = x.size(0);
  const int64_t grid_h = x.size(2) / config_.patch_size;
  const int64_t grid_w = x.size(3) / config_.patch_size;
  const int64_t last = *std::max_element(take.begin(), take.end());
  std::vector<at::Tensor> outputs;
  // Later blocks cannot change earlier outputs, so stop after the last one asked for.
  for (int64_t i = 0; i <= last; ++i) {
    t = block_list_[static_cast<size_t>(i)]->forward(t);
    if (std::find(take.begin(), take.end(), i) != take.end()) outputs.push_back(t);
  }
  const int64_t R = config_.num_register_tokens;
  std::vector<Dinov2IntermediateLayer> result;
  for (at::Tensor out : outputs) {
    if (norm) out = norm_->forward(out);
    Dinov2IntermediateLayer layer;
    layer.cls_token = out.select(1, 0);                              // [B, D]
    at::Tensor patches = out.narrow(1, 1 + R, grid_h * grid_w);      // [B, h*w, D]
    if (reshape) {
      patches = patches.reshape({B, grid_h, grid_w, -1})             // [B, h, w, D]
                    .permute({0, 3, 1, 2})                           // [B, D, h, w]
                    .contiguous();
    }
    layer.patch_tokens = patches;
    result.push_back(std::move(layer));
  }
  return result;
}

}  // namespace nephroseg::dinov2
