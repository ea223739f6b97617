#include "models/sam/sam.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>

#include "models/sam/config_json.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/json_config.h"

namespace nephroseg::sam {

SamImpl::SamImpl(const SamConfig& c) : config(c) {
  config.validate();
  pixel_mean = at::tensor(std::vector<float>(c.pixel_mean.begin(), c.pixel_mean.end()))
                   .view({-1, 1, 1});
  pixel_std = at::tensor(std::vector<float>(c.pixel_std.begin(), c.pixel_std.end()))
                  .view({-1, 1, 1});
  image_encoder = register_module("image_encoder", ImageEncoderViT(c));
  prompt_encoder = register_module("prompt_encoder", PromptEncoder(c));
  mask_decoder = register_module("mask_decoder", MaskDecoder(c));
}

// Ref: sam.py::Sam.preprocess
at::Tensor SamImpl::preprocess(const at::Tensor& x_in) const {
  const at::Tensor x = (x_in - pixel_mean) / pixel_std;  // [B, 3, h, w] float
  const int64_t h = x.size(-2), w = x.size(-1);
  const int64_t size = config.img_size;
  return at::constant_pad_nd(x, {0, size - w, 0, size - h}, 0.0);  // [B, 3, S, S]
}

// Ref: sam.py::Sam.postprocess_masks
at::Tensor SamImpl::postprocess_masks(const at::Tensor& masks, std::array<int64_t, 2> input_size,
                                      std::array<int64_t, 2> original_size) const {
  const int64_t size = config.img_size;
  at::Tensor m = at::upsample_bilinear2d(masks, {size, size}, /*align_corners=*/false);
  m = m.slice(2, 0, input_size[0]).slice(3, 0, input_size[1]);  // [B, C, h, w]
  return at::upsample_bilinear2d(m, {original_size[0], original_size[1]},
                                 /*align_corners=*/false);  // [B, C, H, W]
}

// ----------------------------------------------------------------------------------
// SamConfig
// ----------------------------------------------------------------------------------

void SamConfig::validate() const {
  NEPHRO_CHECK(patch_size > 0 && img_size > 0 && img_size % patch_size == 0, "SAM config '",
               name, "': img_size ", img_size, " must be a positive multiple of patch_size ",
               patch_size);
  NEPHRO_CHECK(encoder_depth > 0 && encoder_num_heads > 0 &&
                   encoder_embed_dim % encoder_num_heads == 0,
               "SAM config '", name, "': encoder_embed_dim ", encoder_embed_dim,
               " must be divisible by encoder_num_heads ", encoder_num_heads);
  for (int64_t i : encoder_global_attn_indexes) {
    NEPHRO_CHECK(i >= 0 && i < encoder_depth, "SAM config '", name,
                 "': encoder_global_attn_indexes entry ", i, " outside [0, ", encoder_depth, ")");
  }
  NEPHRO_CHECK(window_size >= 0, "SAM config '", name, "': window_size must be >= 0");
  NEPHRO_CHECK(prompt_embed_dim > 0 && prompt_embed_dim % 8 == 0, "SAM config '", name,
               "': prompt_embed_dim ", prompt_embed_dim, " must be a positive multiple of 8");
  NEPHRO_CHECK(mask_in_chans >= 4 && mask_in_chans % 4 == 0, "SAM config '", name,
               "': mask_in_chans ", mask_in_chans, " must be a positive multiple of 4");
  NEPHRO_CHECK(decoder_num_heads > 0 && attention_downsample_rate > 0 &&
                   prompt_embed_dim % decoder_num_heads == 0 &&
                   (prompt_embed_dim / attention_downsample_rate) % decoder_num_heads == 0,
               "SAM config '", name, "': prompt_embed_dim ", prompt_embed_dim,
               " / attention_downsample_rate ", attention_downsample_rate,
               " must be divisible by decoder_num_heads ", decoder_num_heads);
  NEPHRO_CHECK(num_multimask_outputs >= 1 && iou_head_depth >= 1 && decoder_depth >= 1,
               "SAM config '", name,
               "': num_multimask_outputs, iou_head_depth and decoder_depth must be >= 1");
  for (double s : pixel_std) {
    NEPHRO_CHECK(s > 0, "SAM config '", name, "': pixel_std entries must be positive");
  }
}

SamConfig SamConfig::vit_b() { return SamConfig{}; }

SamConfig SamConfig::vit_l() {
  SamConfig c;
  c.name = "vit_l";
  c.encoder_embed_dim = 1024;
  c.encoder_depth = 24;
  c.encoder_num_heads = 16;
  c.encoder_global_attn_indexes = {5, 11, 17, 23};
  return c;
}

SamConfig SamConfig::vit_h() {
  SamConfig c;
  c.name = "vit_h";
  c.encoder_embed_dim = 1280;
  c.encoder_depth = 32;
  c.encoder_num_heads = 16;
  c.encoder_global_attn_indexes = {7, 15, 23, 31};
  return c;
}

SamConfig SamConfig::medsam() {
  SamConfig c;
  c.name = "medsam";
  c.preprocess = SamPreprocess::kMedSam;
  return c;
}

SamConfig SamConfig::preset(const std::string& name) {
  if (name == "vit_b") return vit_b();
  if (name == "vit_l") return vit_l();
  if (name == "vit_h") return vit_h();
  if (name == "medsam") return medsam();
  NEPHRO_FAIL("unknown SAM model type '", name, "' (expected vit_b, vit_l, vit_h or medsam)");
}

const EnumNames<SamPreprocess>& preprocess_names() {
  static const EnumNames<SamPreprocess> names(
      "SAM preprocessing", {{SamPreprocess::kSam, "sam", {}}, {SamPreprocess::kMedSam, "medsam", {}}});
  return names;
}

void read_architecture(JsonConfigReader& r, SamConfig& c) {
  r.read("img_size", c.img_size);
  r.read("patch_size", c.patch_size);
  r.read("encoder_embed_dim", c.encoder_embed_dim);
  r.read("encoder_depth", c.encoder_depth);
  r.read("encoder_num_heads", c.encoder_num_heads);
  r.read("encoder_global_attn_indexes", c.encoder_global_attn_indexes);
  r.read("window_size", c.window_size);
  r.read("mlp_ratio", c.mlp_ratio);
  r.read("use_rel_pos", c.use_rel_pos);
  r.read("qkv_bias", c.qkv_bias);
  r.read("layernorm_eps", c.layernorm_eps);
  r.read("prompt_embed_dim", c.prompt_embed_dim, {"out_chans"});
  r.read("mask_in_chans", c.mask_in_chans);
  r.read("decoder_depth", c.decoder_depth);
  r.read("decoder_num_heads", c.decoder_num_heads);
  r.read("decoder_mlp_dim", c.decoder_mlp_dim);
  r.read("attention_downsample_rate", c.attention_downsample_rate);
  r.read("num_multimask_outputs", c.num_multimask_outputs);
  r.read("iou_head_depth", c.iou_head_depth);
  r.read("iou_head_hidden_dim", c.iou_head_hidden_dim);
}

void write_architecture(nlohmann::json& j, const SamConfig& c) {
  j["img_size"] = c.img_size;
  j["patch_size"] = c.patch_size;
  j["encoder_embed_dim"] = c.encoder_embed_dim;
  j["encoder_depth"] = c.encoder_depth;
  j["encoder_num_heads"] = c.encoder_num_heads;
  j["encoder_global_attn_indexes"] = c.encoder_global_attn_indexes;
  j["window_size"] = c.window_size;
  j["mlp_ratio"] = c.mlp_ratio;
  j["use_rel_pos"] = c.use_rel_pos;
  j["qkv_bias"] = c.qkv_bias;
  j["layernorm_eps"] = c.layernorm_eps;
  j["prompt_embed_dim"] = c.prompt_embed_dim;
  j["mask_in_chans"] = c.mask_in_chans;
  j["decoder_depth"] = c.decoder_depth;
  j["decoder_num_heads"] = c.decoder_num_heads;
  j["decoder_mlp_dim"] = c.decoder_mlp_dim;
  j["attention_downsample_rate"] = c.attention_downsample_rate;
  j["num_multimask_outputs"] = c.num_multimask_outputs;
  j["iou_head_depth"] = c.iou_head_depth;
  j["iou_head_hidden_dim"] = c.iou_head_hidden_dim;
}

namespace {
SamConfig sam_from_object(const nlohmann::json& j, const std::string& what,
                          const std::string& default_name) {
  SamConfig c;
  c.name = default_name;
  JsonConfigReader r(j, what);
  r.read("name", c.name);
  read_architecture(r, c);
  r.read("pixel_mean", c.pixel_mean);
  r.read("pixel_std", c.pixel_std);
  r.read("mask_threshold", c.mask_threshold);
  r.read("preprocess", c.preprocess, preprocess_names());
  r.finish();
  c.validate();
  return c;
}
}  // namespace

SamConfig SamConfig::from_json_object(const nlohmann::json& j, const std::string& what) {
  return sam_from_object(j, what, what);
}

SamConfig SamConfig::from_json(const std::string& path) {
  // Without a "name" field the model is named after its file.
  return sam_from_object(read_json_config_file(path, "SAM config file"),
                         "SAM config file " + path, path);
}

SamConfig SamConfig::from_json_text(const std::string& text, const std::string& what) {
  return sam_from_object(read_json_config_text(text, what), what, what);
}

nlohmann::json SamConfig::to_json_object() const {
  nlohmann::json j;
  j["name"] = name;
  write_architecture(j, *this);
  j["pixel_mean"] = pixel_mean;
  j["pixel_std"] = pixel_std;
  j["mask_threshold"] = mask_threshold;
  j["preprocess"] = preprocess_names().name(preprocess);
  return j;
}

std::string SamConfig::to_json() const { return to_json_object().dump(2); }

bool SamConfig::operator==(const SamConfig& o) const {
  return to_json_object() == o.to_json_object();
}

}  // namespace nephroseg::sam
