// nephroseg/gbmseg/model_backends.h: the GBMSeg backends that run the published models
// (DINOv2 patch features, SAM point prompts), and the factory the CLI uses to build any
// backend by name.
//
//   using namespace nephroseg::gbmseg;
//   BackendSpec f;  f.kind = "dinov2";  f.checkpoint = "dinov2_vitg14_pretrain.pth";
//                   f.model_type = "vitg14";
//   BackendSpec s;  s.kind = "sam";     s.checkpoint = "sam_vit_l_0b3195.pth";
//                   s.model_type = "vit_l";
//   auto features  = make_feature_extractor(f);   // std::shared_ptr<PatchFeatureExtractor>
//   auto segmenter = make_point_segmenter(s);     // std::shared_ptr<PointPromptSegmenter>
//
// Built-in kinds: "dinov2" and "sam" (the models), and the weight-free "classical" ones
// (gbmseg/classical_features.h, classical_segmenter.h), known without any set-up. Other
// backends plug in without touching this file: register a factory once with
// register_feature_extractor_kind() / register_point_segmenter_kind(); make_*() consult
// the registry first, then the built-in kinds. Unknown kinds give an error listing the
// known ones.
//
// Thread-safety: the adapters are immutable after construction; extract()/segment() may
// be called from several threads at once (the models are const and run without
// autograd). The registry functions are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nephroseg/core/precision.h"
#include "nephroseg/gbmseg/backends.h"

namespace nephroseg::dinov2 {
class Dinov2Model;
}
namespace nephroseg::sam {
class SamModel;
}

namespace nephroseg::gbmseg {

/// DINOv2 patch features: ImageNet normalisation of the RGB image (no resize: the
/// pipeline hands it S x S), forward_features, x_norm_patchtokens of the single image.
/// extract() returns float32 [N, D], N = (S / 14)^2, row-major over the patch grid.
// Ref: feature_matching/generate_points.py::forward_matching (transform + forward_features)
class Dinov2FeatureExtractor : public PatchFeatureExtractor {
 public:
  /// `description` is recorded in outputs (e.g. "dinov2 vitg14 (dinov2_vitg14_pretrain.pth)");
  /// empty = "dinov2 (patch <p>, dim <D>, depth <L>)".
  explicit Dinov2FeatureExtractor(std::shared_ptr<const dinov2::Dinov2Model> model,
                                  std::string description = "");
  std::string name() const override;
  int patch_size() const override;
  at::Tensor extract(const cv::Mat& rgb) const override;
  const dinov2::Dinov2Model& model() const { return *model_; }

 private:
  std::shared_ptr<const dinov2::Dinov2Model> model_;
  std::string description_;
};

/// SAM with point prompts, as the authors' segmenter/segment.py calls it: one image
/// encoder pass, all points with labels 1/0, multimask_output = false (the single mask of
/// output token 0), logits > mask_threshold (0 for the official models). The image is
/// fed as RGB (the authors feed BGR; identical for grey TEM images, spec §14 #9).
// Ref: segmenter/segment.py::process_image
class SamPointSegmenter : public PointPromptSegmenter {
 public:
  explicit SamPointSegmenter(std::shared_ptr<const sam::SamModel> model,
                             std::string description = "");
  std::string name() const override;
  cv::Mat segment(const cv::Mat& rgb, const std::vector<cv::Point2f>& points,
                  const std::vector<int>& labels) const override;
  const sam::SamModel& model() const { return *model_; }

 private:
  std::shared_ptr<const sam::SamModel> model_;
  std::string description_;
};

/// What to build. Fields a kind does not use are ignored.
struct BackendSpec {
  std::string kind;         ///< "dinov2" / "sam" built in; others via the registry
  std::string checkpoint;   ///< weights file (required unless random_weights)
  std::string model_type;   ///< preset: "vits14".."vitg14"[_reg4] / "vit_b" | "vit_l" | "vit_h"
  std::string config_json;  ///< JSON hyper-parameters; takes precedence over model_type
  bool random_weights = false;  ///< benchmarks/tests: random init, no checkpoint
  uint64_t seed = 0;            ///< for random_weights
  /// Inference precision of the model kinds (core/precision.h; the CLI's --precision).
  Precision precision = Precision::kFp32;
};

using FeatureExtractorFactory =
    std::function<std::shared_ptr<PatchFeatureExtractor>(const BackendSpec&)>;
using PointSegmenterFactory =
    std::function<std::shared_ptr<PointPromptSegmenter>(const BackendSpec&)>;

/// Builds the feature extractor `spec.kind` ("dinov2", "classical", or a registered kind). Throws
/// nephroseg::Error for unknown kinds (listing the known ones) and bad specs.
std::shared_ptr<PatchFeatureExtractor> make_feature_extractor(const BackendSpec& spec);
/// Builds the point-prompt segmenter `spec.kind` ("sam", "classical", or a registered kind).
std::shared_ptr<PointPromptSegmenter> make_point_segmenter(const BackendSpec& spec);

/// Adds (or replaces) a kind for make_feature_extractor / make_point_segmenter.
void register_feature_extractor_kind(const std::string& kind, FeatureExtractorFactory factory);
void register_point_segmenter_kind(const std::string& kind, PointSegmenterFactory factory);
/// Known kinds (built-in first, then registered), for help texts and errors.
std::vector<std::string> feature_extractor_kinds();
std::vector<std::string> point_segmenter_kinds();

}  // namespace nephroseg::gbmseg
