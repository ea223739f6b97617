// Ref: GlomSAM segment_anything/modeling/image_encoder.py::ImageEncoderViT
#include "models/glomsam/image_encoder.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/conv.h>

#include <algorithm>

#include "models/sam/common.h"
#include "nephroseg/core/error.h"

namespace nephroseg::models::glomsam {

using nephroseg::glomsam::GlomSamConfig;

GlomImageEncoderImpl::GlomImageEncoderImpl(const GlomSamConfig& config) {
  const sam::SamConfig& c = config.sam;
  const int64_t grid = c.grid_size();
  const int64_t dim = c.encoder_embed_dim;
  const int64_t out = c.prompt_embed_dim;
  pos_embed = register_parameter("pos_embed", at::zeros({1, grid, grid, dim}));
  patch_embed = register_module("patch_embed", sam::PatchEmbed(c.patch_size, 3, dim));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.encoder_depth; ++i) {
    const auto& g = c.encoder_global_attn_indexes;
    const bool global = std::find(g.begin(), g.end(), i) != g.end();
    blocks->push_back(sam::Block(dim, c.encoder_num_heads, c.mlp_ratio, c.qkv_bias,
                                 c.layernorm_eps, c.use_rel_pos, global ? 0 : c.window_size,
                                 std::make_pair(grid, grid)));
  }
  neck = register_module(
      "neck", torch::nn::Sequential(
                  torch::nn::Conv2d(torch::nn::Conv2dOptions(dim, out, 1).bias(false)),
                  sam::LayerNorm2d(out, 1e-6),
                  torch::nn::Conv2d(torch::nn::Conv2dOptions(out, out, 3).padding(1).bias(false)),
                  sam::LayerNorm2d(out, 1e-6)));

  // Ablations (config.prompt_generator / cnn_branch = false) leave the module out
  // entirely: no parameters, no keys, no compute; the other keys keep their names.
  if (config.prompt_generator) {
    PromptGeneratorOptions pg;
    pg.embed_dim = dim;
    pg.depth = c.encoder_depth;
    pg.scale_factor = config.pg_scale_factor;
    pg.freq_ratio = config.pg_freq_ratio;
    pg.img_size = c.img_size;
    pg.patch_size = c.patch_size;
    pg.token_order = config.token_order == nephroseg::glomsam::TokenOrder::kReference
                         ? EmbeddingTokenOrder::kReference
                         : EmbeddingTokenOrder::kPerToken;
    prompt_generator = register_module("prompt_generator", PromptGenerator(pg));
  }

  if (!config.cnn_branch) return;
  CnnBranchOptions cb;
  cb.resnet.block = config.resnet_basic_block ? ResNetBlock::kBasic : ResNetBlock::kBottleneck;
  cb.resnet.layers = config.resnet_layers;
  cb.resnet.stem_width = config.resnet_stem_width;
  cb.resnet.num_classes = config.resnet_num_classes;
  cb.out_chans = config.cnn_chans;
  cb.feature_aliases = config.feature_aliases;
  cnn_branch = register_module("cnn_branch", CnnBranch(cb));
  // The reference builds FusionWithSE(cnn_chans, cnn_chans, out_chans).
  fusion_module = register_module(
      "fusion_module", FusionWithSe(config.cnn_chans, config.cnn_chans, out, config.se_reduction));
}

std::vector<at::Tensor> GlomImageEncoderImpl::vit_parameters() const {
  std::vector<at::Tensor> params{pos_embed};
  for (const auto& p : patch_embed->parameters()) params.push_back(p);
  for (const auto& p : blocks->parameters()) params.push_back(p);
  for (const auto& p : neck->parameters()) params.push_back(p);
  return params;
}

at::Tensor GlomImageEncoderImpl::forward(const at::Tensor& image) {
  return forward_traced(image, nullptr);
}

at::Tensor GlomImageEncoderImpl::forward_traced(const at::Tensor& image, EncoderTrace* trace) {
  NEPHRO_CHECK(image.dim() == 4 && image.size(1) == 3,
               "GlomSAM image encoder: expected [B, 3, S, S], got ", image.sizes());
  const at::Tensor pe = patch_embed->forward(image);  // [B, g, g, D] before pos_embed
  PromptTrace pt;
  if (prompt_generator) pt = prompt_generator->forward_trace(image, pe);
  at::Tensor x = pe + pos_embed;
  if (trace) {
    trace->patch_embed = pe;
    trace->pos_added = x;
  }
  const int64_t b = x.size(0), h = x.size(1), w = x.size(2);
  int64_t i = 0;
  for (const auto& blk : *blocks) {
    // The prompt of block i is added right before it (spec §3.2 c).
    if (prompt_generator) x = pt.prompts[i].reshape({b, h, w, -1}) + x;
    ++i;
    x = blk->as<sam::BlockImpl>()->forward(x);  // [B, g, g, D]
    if (trace) trace->blocks.push_back(x);
  }
  at::Tensor v = neck->forward(x.permute({0, 3, 1, 2}));  // [B, C, g, g]
  at::Tensor cnn, out = v;  // without the CNN branch the neck output is E (MedSAM)
  if (cnn_branch) {
    cnn = cnn_branch->forward(image);         // [B, C, g/2, g/2]
    out = fusion_module->forward(v, cnn);     // [B, C, g, g]
  }
  if (trace) {
    trace->prompt = std::move(pt);
    trace->neck = v;
    trace->cnn_adapter = cnn;
    trace->output = out;
  }
  return out;
}

}  // namespace nephroseg::models::glomsam
