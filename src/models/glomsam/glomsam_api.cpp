// GlomSamModel: the public face of the GlomSAM module (loading, saving, inference with
// tiling for images larger than the model input).
#include <ATen/ATen.h>
#include <opencv2/core.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/module_init.h"
#include "models/glomsam/internal.h"
#include "models/glomsam/tiling.h"
#include "models/glomsam/trainer_access.h"
#include "nephroseg/checkpoint/pth.h"
#include "nephroseg/checkpoint/state_dict.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/io/tensor_mat.h"

namespace nephroseg::glomsam {

using models::glomsam::GlomSam;

GlomSamModel::GlomSamModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GlomSamModel::~GlomSamModel() = default;

const GlomSamConfig& GlomSamModel::config() const { return impl_->config; }
Precision GlomSamModel::precision() const { return impl_->precision; }

std::shared_ptr<GlomSamModel> GlomSamModel::create(const GlomSamConfig& config, uint64_t seed,
                                                   Precision precision) {
  config.validate();
  at::manual_seed(seed);
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->module = GlomSam(config);
  impl->module->eval();
  impl->precision = apply_model_precision(*impl->module->image_encoder->blocks, precision);
  return std::make_shared<GlomSamModel>(std::move(impl));
}

namespace {
// Keys of the cnn_branch.features.* aliases, which a file may omit.
std::vector<std::string> alias_keys(const checkpoint::StateDict& own) {
  std::vector<std::string> keys;
  for (const auto& k : own.keys()) {
    if (k.find(".cnn_branch.features.") != std::string::npos) keys.push_back(k);
  }
  return keys;
}
}  // namespace

std::shared_ptr<GlomSamModel> GlomSamModel::load(const std::string& path, const GlomSamConfig& config,
                                                 Precision precision) {
  config.validate();
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  {
    // Every weight comes from the checkpoint (the features.* aliases share the
    // trunk's tensors): skip the random initialisation of the big layers, and leave
    // the caller's random stream as it was.
    at::NoGradGuard no_grad;
    SkipInitGuard skip_init;
    GlobalRngGuard keep_rng;
    impl->module = GlomSam(config);
  }
  auto model = std::make_shared<GlomSamModel>(std::move(impl));
  {
    // Dropped before the precision conversion, so the shared float32 storages are
    // freed as the blocks are converted.
    checkpoint::StateDict sd = checkpoint::load_state_dict(path);
    checkpoint::BindOptions bo;
    bo.allow_missing = alias_keys(checkpoint::state_dict_of(*model->impl_->module));
    checkpoint::bind_state_dict(*model->impl_->module, sd, path, bo);
  }
  model->impl_->module->eval();
  model->impl_->precision =
      apply_model_precision(*model->impl_->module->image_encoder->blocks, precision);
  return model;
}

GlomSamConfig GlomSamModel::config_for(const std::string& checkpoint, const std::string& spec) {
  if (!spec.empty() && spec != "auto") return GlomSamConfig::preset(spec);
  if (auto stored = stored_config(checkpoint)) return *stored;
  return GlomSamConfig::official();
}

std::optional<GlomSamConfig> GlomSamModel::stored_config(const std::string& path) {
  checkpoint::Value root = checkpoint::load_pickle_file(path);
  const checkpoint::Value* c = root.find("config");
  if (!c || c->kind != checkpoint::Value::Kind::kString) return std::nullopt;
  return GlomSamConfig::from_json_text(c->s, path + " ('config' entry)");
}

void GlomSamModel::load_initial_weights(const std::string& sam_path, const std::string& resnet_path,
                                        const std::string& unet_path) {
  auto& m = impl_->module;
  NEPHRO_CHECK(resnet_path.empty() || m->image_encoder->cnn_branch,
               "GlomSAM: a ResNet checkpoint was given but this model has no CNN branch (ablation ",
               impl_->config.ablation_label(), ")");
  NEPHRO_CHECK(unet_path.empty() || m->RoughMaskGenerator,
               "GlomSAM: a UNet checkpoint was given but this model has no rough-mask generator (ablation ",
               impl_->config.ablation_label(), ")");
  if (!sam_path.empty()) {
    checkpoint::StateDict sd = checkpoint::load_state_dict(sam_path);
    checkpoint::StateDict enc = sd.sub("image_encoder.");
    // The ViT part of the GlomSAM encoder; the new modules keep their own init.
    checkpoint::StateDict own = checkpoint::state_dict_of(*m->image_encoder);
    checkpoint::BindOptions bo;
    for (const auto& k : own.keys()) {
      if (k.rfind("prompt_generator.", 0) == 0 || k.rfind("cnn_branch.", 0) == 0 ||
          k.rfind("fusion_module.", 0) == 0) {
        bo.allow_missing.push_back(k);
      }
    }
    checkpoint::bind_state_dict(*m->image_encoder, enc, sam_path + " (image_encoder)", bo);
    checkpoint::bind_state_dict(*m->prompt_encoder, sd.sub("prompt_encoder."), sam_path + " (prompt_encoder)");
    checkpoint::bind_state_dict(*m->mask_decoder, sd.sub("mask_decoder."), sam_path + " (mask_decoder)");
  }
  if (!resnet_path.empty()) {
    checkpoint::StateDict sd = checkpoint::load_state_dict(resnet_path);
    checkpoint::BindOptions bo;
    if (!sd.contains("fc.weight")) bo.allow_missing = {"fc.weight", "fc.bias"};
    checkpoint::bind_state_dict(*m->image_encoder->cnn_branch->resnet101, sd, resnet_path, bo);
  }
  if (!unet_path.empty()) {
    checkpoint::LoadOptions lo;  // automatic: bare dict or {"state_dict": ...}
    checkpoint::StateDict sd = checkpoint::load_state_dict(unet_path, lo);
    checkpoint::bind_state_dict(*m->RoughMaskGenerator, sd, unet_path);
  }
}

void GlomSamModel::save(const std::string& path) const {
  NEPHRO_CHECK(impl_->precision == Precision::kFp32, "GlomSAM save: the model runs in ",
               precision_names().name(impl_->precision),
               " (converted for inference); only a float32 model can be saved");
  checkpoint::save_state_dict(path, models::glomsam::reference_state_dict(*impl_->module));
}

at::Tensor GlomSamModel::forward(const at::Tensor& images, const at::Tensor& boxes) const {
  at::NoGradGuard no_grad;
  return impl_->module->forward(images.to(at::kFloat), boxes);
}

PredictResult GlomSamModel::predict(const cv::Mat& rgb, const PredictOptions& options) const {
  NEPHRO_CHECK(rgb.type() == CV_8UC3, "GlomSAM predict: expected an 8-bit RGB image");
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t S = impl_->config.sam.img_size;
  const int64_t H = rgb.rows, W = rgb.cols;
  NEPHRO_CHECK(options.tile_overlap >= 0 && options.tile_overlap < S,
               "GlomSAM predict: tile_overlap must be in [0, ", S, ")");
  if (options.box) {
    const Box& b = *options.box;
    NEPHRO_CHECK(std::isfinite(b[0]) && std::isfinite(b[1]) && std::isfinite(b[2]) &&
                     std::isfinite(b[3]) && b[2] > b[0] && b[3] > b[1],
                 "GlomSAM predict: the box (", b[0], ",", b[1], ",", b[2], ",", b[3],
                 ") must be finite with x1 > x0 and y1 > y0");
    NEPHRO_CHECK(b[2] > 0 && b[3] > 0 && b[0] < W && b[1] < H, "GlomSAM predict: the box (", b[0],
                 ",", b[1], ",", b[2], ",", b[3], ") lies entirely outside the ", W, "x", H,
                 " image");
  }
  // [H, W, 3] uint8 -> [3, H, W] float in [0,1] (uint8 * float32(1/255), as the reference).
  at::Tensor img =
      io::mat_to_tensor(rgb).permute({2, 0, 1}).to(at::kFloat) * (1.0f / 255.0f);
  auto starts = [&](int64_t len) { return detail::tile_starts(len, S, options.tile_overlap); };
  at::Tensor sum = at::zeros({H, W}, at::kFloat);
  at::Tensor count = at::zeros({H, W}, at::kFloat);
  PredictResult result;
  at::NoGradGuard no_grad;
  for (int64_t y : starts(H)) {
    for (int64_t x : starts(W)) {
      const int64_t th = std::min(S, H - y), tw = std::min(S, W - x);
      at::Tensor tile = at::zeros({1, 3, S, S}, at::kFloat);
      tile[0].narrow(1, 0, th).narrow(2, 0, tw).copy_(img.narrow(1, y, th).narrow(2, x, tw));
      at::Tensor boxes;
      if (options.box) {
        const Box& b = *options.box;
        Box local{std::clamp<float>(b[0] - x, 0, tw), std::clamp<float>(b[1] - y, 0, th),
                  std::clamp<float>(b[2] - x, 0, tw), std::clamp<float>(b[3] - y, 0, th)};
        if (local[2] <= local[0] || local[3] <= local[1]) continue;  // box misses this tile
        boxes = at::tensor(std::vector<float>(local.begin(), local.end())).view({1, 4});
        result.boxes.push_back(local);
      }
      at::Tensor logits = impl_->module->forward(tile, boxes)[0][0];  // [S, S]
      sum.narrow(0, y, th).narrow(1, x, tw).add_(logits.narrow(0, 0, th).narrow(1, 0, tw));
      count.narrow(0, y, th).narrow(1, x, tw).add_(1.0f);
    }
  }
  // Pixels no tile covered (box given and missing them) are background.
  result.logits = at::where(count > 0, sum / count.clamp_min(1.0f), at::full_like(sum, -1e4f));
  result.mask = result.logits.gt(impl_->config.mask_threshold).to(at::kByte);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

std::shared_ptr<models::glomsam::GlomSamImpl> trainer_access::module_of(const GlomSamModel& model) {
  return internal::module_ptr(model);
}

}  // namespace nephroseg::glomsam
