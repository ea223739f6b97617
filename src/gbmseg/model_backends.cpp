// GBMSeg backends over the DINOv2 and SAM ports, and the backend factory/registry.
#include "nephroseg/gbmseg/model_backends.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include "nephroseg/core/error.h"
#include "nephroseg/gbmseg/classical_features.h"
#include "nephroseg/gbmseg/classical_segmenter.h"
#include "nephroseg/dinov2/dinov2.h"
#include "nephroseg/sam/sam.h"

namespace nephroseg::gbmseg {

namespace {

// [H, W, 3] uint8 view of a CV_8UC3 image (no copy; the Mat must outlive the view).
at::Tensor rgb_view(const cv::Mat& rgb, const char* who) {
  NEPHRO_CHECK(!rgb.empty() && rgb.type() == CV_8UC3, who,
               ": expected an 8-bit RGB image (CV_8UC3)");
  return at::from_blob(const_cast<uint8_t*>(rgb.ptr<uint8_t>()), {rgb.rows, rgb.cols, 3},
                       {static_cast<int64_t>(rgb.step[0]), 3, 1}, at::kByte);
}

std::string file_name(const std::string& path) {
  return std::filesystem::path(path).filename().string();
}

}  // namespace

// ---------------------------------------------------------------------------
// DINOv2
// ---------------------------------------------------------------------------

Dinov2FeatureExtractor::Dinov2FeatureExtractor(std::shared_ptr<const dinov2::Dinov2Model> model,
                                               std::string description)
    : model_(std::move(model)), description_(std::move(description)) {
  NEPHRO_CHECK(model_ != nullptr, "Dinov2FeatureExtractor: no model given");
  if (description_.empty()) {
    const dinov2::Dinov2Config& c = model_->config();
    description_ = detail::concat("dinov2 (patch ", c.patch_size, ", dim ", c.embed_dim,
                                  ", depth ", c.depth, ")");
  }
}

std::string Dinov2FeatureExtractor::name() const { return description_; }

int Dinov2FeatureExtractor::patch_size() const {
  return static_cast<int>(model_->config().patch_size);
}

// Ref: feature_matching/generate_points.py::forward_matching (ToTensor + ImageNet
//      Normalize, forward_features()["x_norm_patchtokens"])
at::Tensor Dinov2FeatureExtractor::extract(const cv::Mat& rgb) const {
  const int p = patch_size();
  NEPHRO_CHECK(rgb.rows % p == 0 && rgb.cols % p == 0, "Dinov2FeatureExtractor: image of ",
               rgb.cols, "x", rgb.rows, " pixels is not a multiple of the patch size ", p);
  // size 0: no resize (the pipeline already resized to S x S, like the authors' main.py;
  // their Resize(S) + CenterCrop(S) are no-ops on an S x S image).
  return model_->patch_features(rgb_view(rgb, "Dinov2FeatureExtractor"), /*size=*/0).tokens;
}

// ---------------------------------------------------------------------------
// SAM
// ---------------------------------------------------------------------------

SamPointSegmenter::SamPointSegmenter(std::shared_ptr<const sam::SamModel> model,
                                     std::string description)
    : model_(std::move(model)), description_(std::move(description)) {
  NEPHRO_CHECK(model_ != nullptr, "SamPointSegmenter: no model given");
  if (description_.empty()) description_ = "sam " + model_->config().name;
}

std::string SamPointSegmenter::name() const { return description_; }

// Ref: segmenter/segment.py::process_image (SamPredictor.set_image + predict with
//      multimask_output=False, box=None)
cv::Mat SamPointSegmenter::segment(const cv::Mat& rgb, const std::vector<cv::Point2f>& points,
                                   const std::vector<int>& labels) const {
  NEPHRO_CHECK(points.size() == labels.size(), "SamPointSegmenter: ", points.size(),
               " point(s) but ", labels.size(), " label(s)");
  NEPHRO_CHECK(!points.empty(), "SamPointSegmenter: no point prompt given");
  const sam::ImageEmbedding embedding = model_->encode(rgb_view(rgb, "SamPointSegmenter"));
  sam::SamPrompt prompt;
  prompt.points.reserve(points.size());
  for (const cv::Point2f& p : points) prompt.points.push_back({p.x, p.y});
  prompt.labels = labels;
  prompt.multimask = false;
  const sam::SamResult result = model_->predict(embedding, prompt);
  // masks: [1, H, W] bool = logits > mask_threshold (0 for the official models).
  const at::Tensor mask = result.masks.select(0, 0).to(at::kByte).mul(255).contiguous();
  cv::Mat out(rgb.rows, rgb.cols, CV_8UC1);
  NEPHRO_CHECK(mask.size(0) == rgb.rows && mask.size(1) == rgb.cols,
               "SamPointSegmenter: SAM returned a mask of ", mask.sizes(), " for a ", rgb.cols,
               "x", rgb.rows, " image");
  std::memcpy(out.data, mask.data_ptr<uint8_t>(), static_cast<size_t>(mask.numel()));
  return out;
}

// ---------------------------------------------------------------------------
// Factory and registry
// ---------------------------------------------------------------------------

namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, FeatureExtractorFactory> features;
  std::map<std::string, PointSegmenterFactory> segmenters;
};

Registry& registry() {
  static Registry r;
  return r;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// "file.pth" or "random weights, seed 0", plus ", bf16" / ", int8" off fp32.
std::string weights_note(const BackendSpec& spec) {
  const std::string w = spec.random_weights ? detail::concat("random weights, seed ", spec.seed)
                                            : file_name(spec.checkpoint);
  return spec.precision == Precision::kFp32 ? w : w + ", " + precision_names().name(spec.precision);
}

void check_weights(const BackendSpec& spec, const char* flag_hint) {
  if (spec.random_weights) return;
  NEPHRO_CHECK(!spec.checkpoint.empty(), "no ", spec.kind, " checkpoint given (", flag_hint, ")");
  NEPHRO_CHECK(std::filesystem::is_regular_file(spec.checkpoint), spec.kind, " checkpoint '",
               spec.checkpoint, "' does not exist");
}

std::shared_ptr<PatchFeatureExtractor> make_dinov2(const BackendSpec& spec) {
  NEPHRO_CHECK(!spec.model_type.empty() || !spec.config_json.empty(),
               "dinov2: give a model type (vits14|vitb14|vitl14|vitg14[_reg4]) or a JSON config");
  check_weights(spec, "--dinov2");
  const dinov2::Dinov2Config config = spec.config_json.empty()
                                          ? dinov2::Dinov2Config::preset(spec.model_type)
                                          : dinov2::Dinov2Config::from_json(spec.config_json);
  const std::string type =
      spec.config_json.empty() ? spec.model_type : file_name(spec.config_json);
  std::shared_ptr<const dinov2::Dinov2Model> model =
      spec.random_weights ? dinov2::Dinov2Model::random(config, spec.seed, spec.precision)
                          : dinov2::Dinov2Model::load(spec.checkpoint, config, spec.precision);
  return std::make_shared<Dinov2FeatureExtractor>(
      std::move(model), detail::concat("dinov2 ", type, " (", weights_note(spec), ")"));
}

std::shared_ptr<PointPromptSegmenter> make_sam(const BackendSpec& spec) {
  NEPHRO_CHECK(!spec.model_type.empty() || !spec.config_json.empty(),
               "sam: give a model type (vit_b|vit_l|vit_h) or a JSON config");
  check_weights(spec, "--sam");
  const sam::SamConfig config = spec.config_json.empty() ? sam::SamConfig::preset(spec.model_type)
                                                         : sam::SamConfig::from_json(spec.config_json);
  NEPHRO_CHECK(config.preprocess == sam::SamPreprocess::kSam,
               "sam: MedSAM models take box prompts only; GBMSeg needs point prompts");
  const std::string type =
      spec.config_json.empty() ? spec.model_type : file_name(spec.config_json);
  std::shared_ptr<const sam::SamModel> model =
      spec.random_weights ? sam::SamModel::random(config, spec.seed, spec.precision)
                          : sam::SamModel::load(spec.checkpoint, config, spec.precision);
  return std::make_shared<SamPointSegmenter>(
      std::move(model), detail::concat("sam ", type, " (", weights_note(spec), ")"));
}

}  // namespace

void register_feature_extractor_kind(const std::string& kind, FeatureExtractorFactory factory) {
  NEPHRO_CHECK(!kind.empty() && factory, "register_feature_extractor_kind: empty kind or factory");
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.features[kind] = std::move(factory);
}

void register_point_segmenter_kind(const std::string& kind, PointSegmenterFactory factory) {
  NEPHRO_CHECK(!kind.empty() && factory, "register_point_segmenter_kind: empty kind or factory");
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.segmenters[kind] = std::move(factory);
}

std::vector<std::string> feature_extractor_kinds() {
  std::vector<std::string> kinds{"dinov2", "classical"};
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (const auto& [k, f] : r.features) {
    if (k != "dinov2" && k != "classical") kinds.push_back(k);
  }
  return kinds;
}

std::vector<std::string> point_segmenter_kinds() {
  std::vector<std::string> kinds{"sam", "classical"};
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (const auto& [k, f] : r.segmenters) {
    if (k != "sam" && k != "classical") kinds.push_back(k);
  }
  return kinds;
}

std::shared_ptr<PatchFeatureExtractor> make_feature_extractor(const BackendSpec& spec) {
  FeatureExtractorFactory factory;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.features.find(spec.kind);
    if (it != r.features.end()) factory = it->second;
  }
  if (factory) return factory(spec);
  if (spec.kind == "dinov2") return make_dinov2(spec);
  if (spec.kind == "classical") return std::make_shared<ClassicalFeatureExtractor>();
  NEPHRO_FAIL("unknown feature extractor '", spec.kind, "' (available in this build: ",
              join(feature_extractor_kinds()), ")");
}

std::shared_ptr<PointPromptSegmenter> make_point_segmenter(const BackendSpec& spec) {
  PointSegmenterFactory factory;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.segmenters.find(spec.kind);
    if (it != r.segmenters.end()) factory = it->second;
  }
  if (factory) return factory(spec);
  if (spec.kind == "sam") return make_sam(spec);
  if (spec.kind == "classical") return std::make_shared<ClassicalSegmenter>();
  NEPHRO_FAIL("unknown segmenter '", spec.kind, "' (available in this build: ",
              join(point_segmenter_kinds()), ")");
}

}  // namespace nephroseg::gbmseg
