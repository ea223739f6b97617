// Ref: GlomSAM train.py / test.py::GlomSAM (wrapper), MyDataset.py (boxes)
#include "models/glomsam/glomsam.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <unordered_set>

#include "models/sam/config_json.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/json_config.h"

namespace nephroseg::glomsam {

void GlomSamConfig::validate() const {
  sam.validate();
  // Each component's constraints apply only when it is built (ablation switches).
  if (cnn_branch) {
    NEPHRO_CHECK(cnn_chans == sam.prompt_embed_dim, "GlomSAM config: cnn_chans (", cnn_chans,
                 ") must equal prompt_embed_dim (", sam.prompt_embed_dim,
                 "): the reference builds FusionWithSE(cnn_chans, cnn_chans, out_chans)");
    NEPHRO_CHECK(resnet_layers.size() == 4, "GlomSAM config: resnet_layers needs 4 entries");
  }
  if (prompt_generator) {
    NEPHRO_CHECK(pg_scale_factor > 0 && sam.encoder_embed_dim % pg_scale_factor == 0,
                 "GlomSAM config: encoder_embed_dim ", sam.encoder_embed_dim,
                 " is not divisible by pg_scale_factor ", pg_scale_factor);
  }
  if (rough_mask) {
    NEPHRO_CHECK(!unet_features.empty(), "GlomSAM config: unet_features is empty");
    const int64_t div = int64_t{1} << unet_features.size();
    NEPHRO_CHECK(unet_input_size() % div == 0, "GlomSAM config: UNet input ", unet_input_size(),
                 " (img_size / 2) must be divisible by ", div);
  }
}

const EnumNames<AblationRow>& ablation_row_names() {
  static const EnumNames<AblationRow> names(
      "ablation row",
      {{AblationRow::kFull, "full", {"glomsam"}},
       {AblationRow::kNoBoundaryLoss, "no_boundary_loss", {"no-boundary-loss"}},
       {AblationRow::kNoRoughMask, "no_rough_mask", {"no-rough-mask"}},
       {AblationRow::kNoPromptGenerator, "no_prompt_generator", {"no-prompt-generator"}},
       {AblationRow::kNoCnnBranch, "no_cnn_branch", {"no-cnn-branch"}},
       {AblationRow::kMedSam, "medsam", {}}});
  return names;
}

void GlomSamConfig::apply_ablation(AblationRow row) {
  const bool medsam = row == AblationRow::kMedSam;
  boundary_loss = !(medsam || row == AblationRow::kNoBoundaryLoss);
  rough_mask = !(medsam || row == AblationRow::kNoRoughMask);
  prompt_generator = !(medsam || row == AblationRow::kNoPromptGenerator);
  cnn_branch = !(medsam || row == AblationRow::kNoCnnBranch);
}

std::optional<AblationRow> GlomSamConfig::ablation_row() const {
  for (AblationRow row : {AblationRow::kFull, AblationRow::kNoBoundaryLoss, AblationRow::kNoRoughMask,
                          AblationRow::kNoPromptGenerator, AblationRow::kNoCnnBranch, AblationRow::kMedSam}) {
    GlomSamConfig c;
    c.apply_ablation(row);
    if (c.boundary_loss == boundary_loss && c.rough_mask == rough_mask &&
        c.prompt_generator == prompt_generator && c.cnn_branch == cnn_branch) {
      return row;
    }
  }
  return std::nullopt;
}

std::string GlomSamConfig::ablation_label() const {
  if (auto row = ablation_row()) return ablation_row_names().name(*row);
  std::string out;
  const std::pair<bool, const char*> parts[] = {{boundary_loss, "no_boundary_loss"},
                                                {rough_mask, "no_rough_mask"},
                                                {prompt_generator, "no_prompt_generator"},
                                                {cnn_branch, "no_cnn_branch"}};
  for (const auto& [on, name] : parts) {
    if (!on) out += (out.empty() ? "" : "+") + std::string(name);
  }
  return out;
}

GlomSamConfig GlomSamConfig::official() {
  GlomSamConfig c;
  c.sam = sam::SamConfig::vit_b();
  c.sam.name = "glomsam_vit_b";
  return c;
}

GlomSamConfig GlomSamConfig::tiny() {
  GlomSamConfig c;
  sam::SamConfig& s = c.sam;
  s.name = "glomsam_tiny";
  s.img_size = 160;
  s.patch_size = 16;
  s.encoder_embed_dim = 48;
  s.encoder_depth = 4;
  s.encoder_num_heads = 3;
  s.encoder_global_attn_indexes = {1, 3};
  s.window_size = 4;
  s.prompt_embed_dim = 64;
  s.mask_in_chans = 16;
  s.decoder_depth = 2;
  s.decoder_num_heads = 8;
  s.decoder_mlp_dim = 128;
  s.iou_head_hidden_dim = 64;
  c.pg_scale_factor = 8;
  c.resnet_layers = {2, 1, 1, 1};
  c.resnet_stem_width = 8;
  c.resnet_num_classes = 10;
  c.cnn_chans = 64;
  c.unet_features = {4, 8, 16, 32};
  return c;
}

GlomSamConfig GlomSamConfig::preset(const std::string& name) {
  if (name == "official" || name == "vit_b" || name == "glomsam") return official();
  if (name == "tiny") return tiny();
  return from_json(name);
}

const EnumNames<TokenOrder>& token_order_names() {
  static const EnumNames<TokenOrder> names(
      "token order",
      {{TokenOrder::kReference, "reference", {}}, {TokenOrder::kPerToken, "per_token", {"per-token"}}});
  return names;
}

GlomSamConfig GlomSamConfig::from_json_object(const nlohmann::json& object, const std::string& what) {
  const nlohmann::json& j =
      object.is_object() && object.contains("config") ? object.at("config") : object;
  GlomSamConfig c = GlomSamConfig::official();
  JsonConfigReader r(j, what);
  sam::read_architecture(r, c.sam);  // the SAM part, read by SAM's own reader
  r.read("cnn_chans", c.cnn_chans);
  r.read("pg_scale_factor", c.pg_scale_factor);
  r.read("pg_freq_ratio", c.pg_freq_ratio, {"pg_freq_nums"});
  r.read("token_order", c.token_order, token_order_names());
  r.read("resnet_layers", c.resnet_layers);
  r.read("resnet_stem_width", c.resnet_stem_width);
  r.read("resnet_num_classes", c.resnet_num_classes);
  r.read("resnet_basic_block", c.resnet_basic_block);
  r.read("se_reduction", c.se_reduction);
  r.read("feature_aliases", c.feature_aliases);
  r.read("unet_features", c.unet_features);
  r.read("mask_threshold", c.mask_threshold);
  r.read("boundary_loss", c.boundary_loss);
  r.read("rough_mask", c.rough_mask);
  r.read("prompt_generator", c.prompt_generator);
  r.read("cnn_branch", c.cnn_branch);
  for (const char* informative : {"name", "unet_in", "mask_in"}) r.ignore(informative);
  r.finish();
  c.validate();
  return c;
}

GlomSamConfig GlomSamConfig::from_json(const std::string& path) {
  std::ifstream probe(path);
  NEPHRO_CHECK(probe.good(), "GlomSAM config: cannot open '", path,
               "' (expected 'official', 'tiny' or a JSON file)");
  return from_json_object(read_json_config_file(path, "GlomSAM config"), "GlomSAM config " + path);
}

GlomSamConfig GlomSamConfig::from_json_text(const std::string& text, const std::string& what) {
  return from_json_object(read_json_config_text(text, "GlomSAM config in " + what),
                          "GlomSAM config in " + what);
}

nlohmann::json GlomSamConfig::to_json_object() const {
  nlohmann::json j;
  sam::write_architecture(j, sam);
  j["cnn_chans"] = cnn_chans;
  j["pg_scale_factor"] = pg_scale_factor;
  j["pg_freq_ratio"] = pg_freq_ratio;
  j["token_order"] = token_order_names().name(token_order);
  j["resnet_layers"] = resnet_layers;
  j["resnet_stem_width"] = resnet_stem_width;
  j["resnet_num_classes"] = resnet_num_classes;
  j["resnet_basic_block"] = resnet_basic_block;
  j["se_reduction"] = se_reduction;
  j["feature_aliases"] = feature_aliases;
  j["unet_features"] = unet_features;
  j["mask_threshold"] = mask_threshold;
  if (!is_full()) {
    // Only ablated configs carry the switches: full-model files stay as they were.
    j["boundary_loss"] = boundary_loss;
    j["rough_mask"] = rough_mask;
    j["prompt_generator"] = prompt_generator;
    j["cnn_branch"] = cnn_branch;
  }
  return j;
}

std::string GlomSamConfig::to_json() const { return to_json_object().dump(2); }

Box box_from_mask(const at::Tensor& mask_hw, const std::array<int64_t, 4>& jitter) {
  NEPHRO_CHECK(mask_hw.dim() == 2, "box_from_mask: expected [H, W], got ", mask_hw.sizes());
  const int64_t h = mask_hw.size(0), w = mask_hw.size(1);
  at::Tensor fg = mask_hw.ne(0);
  at::Tensor rows = fg.any(1).nonzero();
  if (rows.numel() == 0) return {0.f, 0.f, static_cast<float>(w), static_cast<float>(h)};
  at::Tensor cols = fg.any(0).nonzero();
  const int64_t y0 = rows.min().item<int64_t>(), y1 = rows.max().item<int64_t>();
  const int64_t x0 = cols.min().item<int64_t>(), x1 = cols.max().item<int64_t>();
  return {static_cast<float>(std::max<int64_t>(0, x0 - jitter[0])),
          static_cast<float>(std::max<int64_t>(0, y0 - jitter[2])),
          static_cast<float>(std::min<int64_t>(w, x1 + jitter[1])),
          static_cast<float>(std::min<int64_t>(h, y1 + jitter[3]))};
}

Box box_from_logits(const at::Tensor& logits_hw, float margin) {
  NEPHRO_CHECK(logits_hw.dim() == 2, "box_from_logits: expected [H, W], got ", logits_hw.sizes());
  const float h = static_cast<float>(logits_hw.size(0)), w = static_cast<float>(logits_hw.size(1));
  at::Tensor fg = logits_hw.gt(0);
  at::Tensor rows = fg.any(1).nonzero();
  if (rows.numel() == 0) return {0.f, 0.f, w, h};
  at::Tensor cols = fg.any(0).nonzero();
  return {std::max(0.f, cols.min().item<int64_t>() - margin),
          std::max(0.f, rows.min().item<int64_t>() - margin),
          std::min(w, cols.max().item<int64_t>() + 1 + margin),
          std::min(h, rows.max().item<int64_t>() + 1 + margin)};
}

}  // namespace nephroseg::glomsam

namespace nephroseg::models::glomsam {

checkpoint::StateDict reference_state_dict(const torch::nn::Module& module) {
  checkpoint::StateDict sd;
  const torch::nn::Module::ConstNamedModuleApplyFunction visit =
      [&sd](const std::string& prefix, const torch::nn::Module& m) {
    const std::string p = prefix.empty() ? prefix : prefix + ".";
    for (const auto& kv : m.named_parameters(/*recurse=*/false)) sd.insert(p + kv.key(), kv.value());
    for (const auto& kv : m.named_buffers(/*recurse=*/false)) sd.insert(p + kv.key(), kv.value());
  };
  module.apply(visit);
  return sd;
}

GlomSamImpl::GlomSamImpl(const nephroseg::glomsam::GlomSamConfig& config) : config_(config) {
  config.validate();
  image_encoder = register_module("image_encoder", GlomImageEncoder(config));
  mask_decoder = register_module("mask_decoder", sam::MaskDecoder(config.sam));
  prompt_encoder = register_module("prompt_encoder", sam::PromptEncoder(config.sam));
  if (config.rough_mask) {  // ablation no_rough_mask: no UNet, SAM's no_mask_embed instead
    UNetOptions u;
    u.features = config.unet_features;
    RoughMaskGenerator = register_module("RoughMaskGenerator", UNet(u));
  }
}

at::Tensor GlomSamImpl::rough_mask(const at::Tensor& image, at::Tensor* unet_input,
                                   at::Tensor* unet_logits) {
  NEPHRO_CHECK(!RoughMaskGenerator.is_empty(), "GlomSAM: this model has no rough-mask generator (ablation ",
               config_.ablation_label(), ")");
  const int64_t s = config_.unet_input_size();
  const int64_t m = config_.mask_input_size();
  at::Tensor in = at::upsample_bilinear2d(image, {s, s}, /*align_corners=*/false);  // [B,3,S/2,S/2]
  at::Tensor logits = RoughMaskGenerator->forward(in);                               // [B,1,S/2,S/2]
  if (unet_input) *unet_input = in;
  if (unet_logits) *unet_logits = logits;
  return at::upsample_bilinear2d(logits, {m, m}, /*align_corners=*/false);  // [B,1,4g,4g]
}

at::Tensor GlomSamImpl::forward(const at::Tensor& image, const at::Tensor& boxes) {
  return forward_traced(image, boxes, nullptr);
}

at::Tensor GlomSamImpl::forward_traced(const at::Tensor& image, const at::Tensor& boxes_in,
                                       GlomSamTrace* trace) {
  const int64_t S = config_.sam.img_size;
  NEPHRO_CHECK(image.dim() == 4 && image.size(1) == 3 && image.size(2) == S && image.size(3) == S,
               "GlomSAM: expected images [B, 3, ", S, ", ", S, "], got ", image.sizes());
  const int64_t b = image.size(0);
  at::Tensor unet_in, unet_logits, rough;  // stay undefined without the UNet
  if (!RoughMaskGenerator.is_empty()) rough = rough_mask(image, &unet_in, &unet_logits);
  at::Tensor emb = image_encoder->forward_traced(image, trace ? &trace->encoder : nullptr);
  at::Tensor boxes = boxes_in;
  if (!boxes.defined() && !unet_logits.defined()) {
    // Automatic box without a rough mask (ablation): the whole input.
    boxes = at::tensor(std::vector<float>{0.f, 0.f, static_cast<float>(S), static_cast<float>(S)})
                .view({1, 4})
                .expand({b, 4})
                .contiguous();
  }
  if (!boxes.defined()) {
    // Deployment mode: union box of the rough mask (logits > 0) + 10 px, in S pixels.
    at::NoGradGuard no_grad;
    at::Tensor up = at::upsample_bilinear2d(unet_logits.detach(), {S, S}, false);
    std::vector<float> flat;
    for (int64_t i = 0; i < b; ++i) {
      auto bx = nephroseg::glomsam::box_from_logits(up[i][0], 10.f);
      flat.insert(flat.end(), bx.begin(), bx.end());
    }
    boxes = at::tensor(flat, at::kFloat).view({b, 4});
  }
  NEPHRO_CHECK(boxes.dim() == 2 && boxes.size(0) == b && boxes.size(1) == 4,
               "GlomSAM: boxes must be [B, 4] with B = ", b, ", got ", boxes.sizes());
  auto [sparse, dense] = prompt_encoder->forward({}, {}, boxes.to(at::kFloat), rough);
  at::Tensor dense_pe = prompt_encoder->get_dense_pe();
  auto [low, iou] = mask_decoder->forward(emb, dense_pe, sparse, dense, /*multimask_output=*/false,
                                          trace ? &trace->decoder : nullptr);
  at::Tensor logits = at::upsample_bilinear2d(low, {image.size(2), image.size(3)}, false);
  if (trace) {
    trace->unet_input = unet_in;
    trace->unet_logits = unet_logits;
    trace->rough_mask = rough;
    trace->sparse_embeddings = sparse;
    trace->dense_embeddings = dense;
    trace->dense_pe = dense_pe;
    trace->low_res_logits = low;
    trace->iou_pred = iou;
    trace->logits = logits;
  }
  return logits;  // [B, 1, S, S]
}

void GlomSamImpl::freeze(bool freeze_unet, bool freeze_vit) {
  for (auto& p : image_encoder->vit_parameters()) p.set_requires_grad(!freeze_vit);
  unet_frozen_ = freeze_unet;
  if (RoughMaskGenerator.is_empty()) return;
  for (auto& p : RoughMaskGenerator->parameters()) p.set_requires_grad(!freeze_unet);
  if (freeze_unet) RoughMaskGenerator->eval();
}

void GlomSamImpl::train(bool on) {
  torch::nn::Module::train(on);
  if (unet_frozen_ && !RoughMaskGenerator.is_empty()) RoughMaskGenerator->eval();
}

std::vector<std::pair<std::string, at::Tensor>> GlomSamImpl::unique_named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  std::unordered_set<const void*> seen;
  for (const auto& p : named_parameters()) {
    if (seen.insert(p.value().unsafeGetTensorImpl()).second) out.emplace_back(p.key(), p.value());
  }
  return out;
}

std::vector<at::Tensor> GlomSamImpl::unique_parameters() const {
  std::vector<at::Tensor> out;
  for (auto& kv : unique_named_parameters()) out.push_back(kv.second);
  return out;
}

}  // namespace nephroseg::models::glomsam
