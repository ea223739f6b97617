// Public DINOv2 API: configs, presets, loading, and the image-level entry points.
#include "nephroseg/dinov2/dinov2.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <numeric>

#include "core/module_init.h"
#include "models/dinov2/internal.h"
#include "models/dinov2/vision_transformer.h"
#include "nephroseg/checkpoint/pth.h"
#include "nephroseg/checkpoint/state_dict.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/json_config.h"
#include "nephroseg/core/resize.h"

namespace nephroseg::dinov2 {

// ---------------------------------------------------------------------------------
// Dinov2Config
// ---------------------------------------------------------------------------------

std::vector<std::string> Dinov2Config::preset_names() {
  return {"vits14",      "vitb14",      "vitl14",      "vitg14",
          "vits14_reg4", "vitb14_reg4", "vitl14_reg4", "vitg14_reg4"};
}

// Ref: dinov2/hub/backbones.py::_make_dinov2_model (img_size 518, patch 14,
// init_values 1.0, block_chunks 0) and vision_transformer.py::vit_small/base/large/giant2.
Dinov2Config Dinov2Config::preset(const std::string& name) {
  std::string base = name;
  if (base.rfind("dinov2_", 0) == 0) base = base.substr(7);
  bool reg4 = false;
  if (base.size() > 5 && base.compare(base.size() - 5, 5, "_reg4") == 0) {
    reg4 = true;
    base = base.substr(0, base.size() - 5);
  }
  Dinov2Config c;
  if (base == "vits14") {
    c.embed_dim = 384, c.depth = 12, c.num_heads = 6;
  } else if (base == "vitb14") {
    c.embed_dim = 768, c.depth = 12, c.num_heads = 12;
  } else if (base == "vitl14") {
    c.embed_dim = 1024, c.depth = 24, c.num_heads = 16;
  } else if (base == "vitg14") {
    c.embed_dim = 1536, c.depth = 40, c.num_heads = 24, c.ffn_layer = "swiglufused";
  } else {
    std::string valid;
    for (const auto& n : preset_names()) valid += (valid.empty() ? "" : ", ") + n;
    NEPHRO_FAIL("unknown DINOv2 model type \"", name, "\" (valid: ", valid, ")");
  }
  if (reg4) {
    c.num_register_tokens = 4;
    c.interpolate_antialias = true;
    c.interpolate_offset = 0.0;
  }
  return c;
}

Dinov2Config Dinov2Config::from_json_object(const nlohmann::json& j, const std::string& what) {
  Dinov2Config c;
  JsonConfigReader r(j, what);
  r.read("img_size", c.img_size);
  r.read("patch_size", c.patch_size);
  r.read("in_chans", c.in_chans);
  r.read("embed_dim", c.embed_dim);
  r.read("depth", c.depth);
  r.read("num_heads", c.num_heads);
  r.read("mlp_ratio", c.mlp_ratio);
  r.read("qkv_bias", c.qkv_bias);
  r.read("proj_bias", c.proj_bias);
  r.read("ffn_bias", c.ffn_bias);
  if (const nlohmann::json* v = r.take("init_values"); v && v->is_null()) {
    c.init_values = 0.0;  // the reference's None: no LayerScale
  } else if (v) {
    r.read("init_values", c.init_values);
  }
  r.read("layernorm_eps", c.layernorm_eps);
  r.read("ffn_layer", c.ffn_layer);
  r.read("num_register_tokens", c.num_register_tokens);
  r.read("interpolate_antialias", c.interpolate_antialias);
  r.read("interpolate_offset", c.interpolate_offset);
  int64_t block_chunks = 0;
  r.read("block_chunks", block_chunks);
  NEPHRO_CHECK(block_chunks == 0, r.where("block_chunks"),
               ": only block_chunks 0 (the hub checkpoints' layout) is supported");
  r.finish();
  try {
    c.validate();
  } catch (const Error& e) {
    NEPHRO_FAIL(what, ": ", e.what());
  }
  return c;
}

Dinov2Config Dinov2Config::from_json(const std::string& path) {
  return from_json_object(read_json_config_file(path, "DINOv2 model config"),
                          "DINOv2 model config " + path);
}

Dinov2Config Dinov2Config::from_json_text(const std::string& text, const std::string& what) {
  return from_json_object(read_json_config_text(text, what), what);
}

nlohmann::json Dinov2Config::to_json_object() const {
  nlohmann::json j;
  j["img_size"] = img_size;
  j["patch_size"] = patch_size;
  j["in_chans"] = in_chans;
  j["embed_dim"] = embed_dim;
  j["depth"] = depth;
  j["num_heads"] = num_heads;
  j["mlp_ratio"] = mlp_ratio;
  j["qkv_bias"] = qkv_bias;
  j["proj_bias"] = proj_bias;
  j["ffn_bias"] = ffn_bias;
  j["init_values"] = init_values;
  j["layernorm_eps"] = layernorm_eps;
  j["ffn_layer"] = ffn_layer;
  j["num_register_tokens"] = num_register_tokens;
  j["interpolate_antialias"] = interpolate_antialias;
  j["interpolate_offset"] = interpolate_offset;
  return j;
}

std::string Dinov2Config::to_json() const { return to_json_object().dump(2); }

bool Dinov2Config::operator==(const Dinov2Config& o) const {
  return to_json_object() == o.to_json_object();
}

void Dinov2Config::validate() const {
  NEPHRO_CHECK(patch_size > 0 && img_size >= patch_size && img_size % patch_size == 0,
               "DINOv2 config: img_size ", img_size, " must be a positive multiple of patch_size ",
               patch_size);
  NEPHRO_CHECK(in_chans > 0 && embed_dim > 0 && depth > 0 && num_heads > 0,
               "DINOv2 config: in_chans, embed_dim, depth and num_heads must be positive");
  NEPHRO_CHECK(embed_dim % num_heads == 0, "DINOv2 config: embed_dim ", embed_dim,
               " is not divisible by num_heads ", num_heads);
  NEPHRO_CHECK(mlp_ratio > 0, "DINOv2 config: mlp_ratio must be positive");
  NEPHRO_CHECK(init_values >= 0, "DINOv2 config: init_values must be >= 0");
  NEPHRO_CHECK(num_register_tokens >= 0, "DINOv2 config: num_register_tokens must be >= 0");
  NEPHRO_CHECK(interpolate_offset >= 0, "DINOv2 config: interpolate_offset must be >= 0");
  NEPHRO_CHECK(ffn_layer == "mlp" || ffn_layer == "swiglufused" || ffn_layer == "swiglu",
               "DINOv2 config: unsupported ffn_layer \"", ffn_layer,
               "\" (expected \"mlp\" or \"swiglufused\")");
}

// ---------------------------------------------------------------------------------
// Dinov2Model
// ---------------------------------------------------------------------------------

namespace {

DinoVisionTransformerImpl& vit_of(const std::unique_ptr<Dinov2Model::Impl>& impl) {
  return *impl->vit;
}

std::string describe_config(const Dinov2Config& c) {
  std::string text = c10::str("embed_dim ", c.embed_dim, ", depth ", c.depth, ", ",
                              c.ffn_layer == "mlp" ? "MLP" : "SwiGLU", " FFN, ",
                              c.num_register_tokens, " register tokens");
  return text;
}

// What a state dict looks like as a DINOv2 model, naming the matching preset if any.
std::string describe_checkpoint(const checkpoint::StateDict& sd) {
  if (!sd.contains("cls_token") || sd.at("cls_token").dim() != 3) {
    return "no DINOv2 cls_token (not a DINOv2 backbone state dict)";
  }
  Dinov2Config c;
  c.embed_dim = sd.at("cls_token").size(2);
  int64_t depth = 0;
  for (const auto& key : sd.keys()) {
    if (key.rfind("blocks.", 0) != 0) continue;
    const size_t dot = key.find('.', 7);
    try {
      depth = std::max<int64_t>(depth, std::stoll(key.substr(7, dot - 7)) + 1);
    } catch (const std::exception&) {
      return "blocks that are not keyed blocks.{i}. (a training checkpoint with block "
             "chunks?)";
    }
  }
  c.depth = depth;
  c.ffn_layer = sd.contains("blocks.0.mlp.w12.weight") ? "swiglufused" : "mlp";
  c.num_register_tokens =
      sd.contains("register_tokens") ? sd.at("register_tokens").size(1) : 0;
  std::string text = "a DINOv2 model with " + describe_config(c);
  for (const auto& name : Dinov2Config::preset_names()) {
    const Dinov2Config p = Dinov2Config::preset(name);
    if (p.embed_dim == c.embed_dim && p.depth == c.depth && p.ffn_layer == c.ffn_layer &&
        p.num_register_tokens == c.num_register_tokens) {
      text += " (model type " + name + ")";
    }
  }
  return text;
}

}  // namespace

Dinov2Model::Dinov2Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Dinov2Model::~Dinov2Model() = default;

std::shared_ptr<Dinov2Model> Dinov2Model::load(const std::string& checkpoint_path,
                                               const Dinov2Config& config, Precision precision) {
  auto impl = std::make_unique<Impl>();
  {
    // Every weight comes from the checkpoint: skip the random initialisation.
    at::NoGradGuard no_grad;
    SkipInitGuard skip_init;
    GlobalRngGuard keep_rng;
    impl->vit = DinoVisionTransformer(config);
  }
  {
    // The state dict goes out of scope before the precision conversion below: the
    // parameters share its float32 storages, so each one is freed as its layer is
    // converted (peak about one checkpoint in every precision, not 1.5x).
    checkpoint::StateDict sd = checkpoint::load_state_dict(checkpoint_path);
    try {
      checkpoint::bind_state_dict(*impl->vit, sd, checkpoint_path);
    } catch (const checkpoint::BindError& e) {
      // One summary line first (what the file looks like vs what was asked), then the
      // strict binder's full key lists; the lists travel on unchanged.
      throw checkpoint::BindError(
          c10::str("checkpoint ", checkpoint_path, " holds ", describe_checkpoint(sd),
                   " but the model was built as ", describe_config(config),
                   "; check --model-type / --model-config\n", e.what()),
          e.checkpoint(), e.missing(), e.unexpected(), e.mismatched(), e.expected_count(),
          e.found_count());
    }
  }
  impl->vit->eval();
  impl->precision = apply_model_precision(*impl->vit, precision);
  return std::shared_ptr<Dinov2Model>(new Dinov2Model(std::move(impl)));
}

std::shared_ptr<Dinov2Model> Dinov2Model::random(const Dinov2Config& config, uint64_t seed,
                                                 Precision precision) {
  auto impl = std::make_unique<Impl>();
  {
    at::NoGradGuard no_grad;
    at::manual_seed(seed);
    impl->vit = DinoVisionTransformer(config);
    // Layers keep LibTorch's default initialisation; the token tables (zeros at
    // construction) get small random values so every path is exercised.
    for (auto& p : impl->vit->named_parameters(/*recurse=*/false)) {
      if (p.key() != "mask_token") p.value().normal_(0.0, 0.02);
    }
  }
  impl->vit->eval();
  impl->precision = apply_model_precision(*impl->vit, precision);
  return std::shared_ptr<Dinov2Model>(new Dinov2Model(std::move(impl)));
}

const Dinov2Config& Dinov2Model::config() const { return vit_of(impl_).config(); }
Precision Dinov2Model::precision() const { return impl_->precision; }

Dinov2Output Dinov2Model::forward_features(const at::Tensor& normalized_images) const {
  at::NoGradGuard no_grad;
  return vit_of(impl_).forward_features(normalized_images);
}

std::vector<Dinov2IntermediateLayer> Dinov2Model::get_intermediate_layers(
    const at::Tensor& normalized_images, int64_t n, bool reshape, bool norm) const {
  const int64_t depth = config().depth;
  NEPHRO_CHECK(n >= 1 && n <= depth, "DINOv2: get_intermediate_layers n = ", n,
               " must be in [1, ", depth, "]");
  std::vector<int64_t> take(static_cast<size_t>(n));
  std::iota(take.begin(), take.end(), depth - n);
  return get_intermediate_layers_at(normalized_images, take, reshape, norm);
}

std::vector<Dinov2IntermediateLayer> Dinov2Model::get_intermediate_layers_at(
    const at::Tensor& normalized_images, const std::vector<int64_t>& block_indices,
    bool reshape, bool norm) const {
  at::NoGradGuard no_grad;
  return vit_of(impl_).get_intermediate_layers(normalized_images, block_indices, reshape, norm);
}

at::Tensor Dinov2Model::interpolate_pos_encoding(int64_t grid_h, int64_t grid_w) const {
  NEPHRO_CHECK(grid_h > 0 && grid_w > 0, "DINOv2: grid size ", grid_h, "x", grid_w,
               " must be positive");
  at::NoGradGuard no_grad;
  return vit_of(impl_).interpolate_pos_encoding(grid_h, grid_w);
}

at::Tensor Dinov2Model::prepare_tokens(const at::Tensor& normalized_images) const {
  at::NoGradGuard no_grad;
  return vit_of(impl_).prepare_tokens(normalized_images);
}

// Ref: torchvision ToTensor + Normalize(mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD)
// as used by GBMSeg and dinov2/data/transforms.py.
at::Tensor Dinov2Model::preprocess(const at::Tensor& image_rgb_u8, int64_t size) const {
  const int64_t p = config().patch_size;
  NEPHRO_CHECK(image_rgb_u8.defined() && image_rgb_u8.dim() == 3 && image_rgb_u8.size(2) == 3,
               "DINOv2: expected an RGB image [H, W, 3], got ",
               image_rgb_u8.defined() ? c10::str(image_rgb_u8.sizes()) : std::string("none"));
  NEPHRO_CHECK(image_rgb_u8.scalar_type() == at::kByte, "DINOv2: expected a uint8 image, got ",
               image_rgb_u8.scalar_type());
  NEPHRO_CHECK(size >= 0, "DINOv2: size ", size, " must be >= 0");
  at::Tensor image = image_rgb_u8.cpu();
  if (size > 0) {
    NEPHRO_CHECK(size % p == 0, "DINOv2: size ", size, " must be a multiple of the patch size ",
                 p);
    image = pil_resize(image, size, size, PilFilter::kBicubic);  // [S, S, 3]
  } else {
    NEPHRO_CHECK(image.size(0) > 0 && image.size(1) > 0 && image.size(0) % p == 0 &&
                     image.size(1) % p == 0,
                 "DINOv2: image of ", image.size(1), "x", image.size(0),
                 " pixels (width x height) has sides that are not multiples of the patch size ",
                 p, "; choose a resize size (e.g. ", std::max<int64_t>(p, image.size(0) / p * p),
                 ")");
  }
  at::Tensor x = image.permute({2, 0, 1}).to(at::kFloat).div(255);  // [3, H, W] in [0, 1]
  const at::Tensor mean = at::tensor({0.485f, 0.456f, 0.406f}).view({3, 1, 1});
  const at::Tensor std = at::tensor({0.229f, 0.224f, 0.225f}).view({3, 1, 1});
  return x.sub(mean).div(std).unsqueeze(0).contiguous();  // [1, 3, H, W]
}

PatchFeatures Dinov2Model::patch_features(const at::Tensor& image_rgb_u8, int64_t size) const {
  at::Tensor x = preprocess(image_rgb_u8, size);
  Dinov2Output out = forward_features(x);
  PatchFeatures f;
  f.tokens = out.x_norm_patchtokens.select(0, 0).contiguous();  // [h*w, D]
  f.grid_h = out.grid_h;
  f.grid_w = out.grid_w;
  return f;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> Dinov2Model::state_dict_shapes() const {
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;
  for (const auto& p : impl_->vit->named_parameters(/*recurse=*/true)) {
    shapes.emplace_back(p.key(), p.value().sizes().vec());
  }
  for (const auto& b : impl_->vit->named_buffers(/*recurse=*/true)) {
    shapes.emplace_back(b.key(), b.value().sizes().vec());
  }
  return shapes;
}

}  // namespace nephroseg::dinov2
