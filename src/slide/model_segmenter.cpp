// The model segmenters of `nephroseg slide` (see nephroseg/slide/model_segmenter.h).
#include "nephroseg/slide/model_segmenter.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <filesystem>

#include "nephroseg/core/error.h"
#include "nephroseg/core/file_hash.h"
#include "nephroseg/glomsam/glomsam.h"
#include "nephroseg/io/tensor_mat.h"
#include "nephroseg/sam/sam.h"

namespace fs = std::filesystem;

namespace nephroseg::slide {
namespace {

void require_checkpoint(const SegmenterSpec& spec) {
  NEPHRO_CHECK(!spec.checkpoint.empty(), "--segmenter ", spec.name, " needs --checkpoint FILE");
  std::error_code ec;
  NEPHRO_CHECK(fs::is_regular_file(spec.checkpoint, ec), "--checkpoint: '", spec.checkpoint, "' does not exist");
}

glomsam::GlomSamConfig glomsam_config(const SegmenterSpec& spec) {
  return glomsam::GlomSamModel::config_for(spec.checkpoint, spec.config);
}

sam::SamConfig sam_config(const SegmenterSpec& spec) {
  std::string c = spec.config;
  if (c.empty()) c = spec.name == "medsam" ? "medsam" : "vit_b";
  const std::string ext = fs::path(c).extension().string();
  sam::SamConfig cfg = ext == ".json" ? sam::SamConfig::from_json(c) : sam::SamConfig::preset(c);
  NEPHRO_CHECK((spec.name == "medsam") == (cfg.preprocess == sam::SamPreprocess::kMedSam), "--segmenter ",
               spec.name, ": the model config '", c, "' is ", spec.name == "medsam" ? "not " : "",
               "a MedSAM config");
  return cfg;
}

// An [H, W] float tensor as a CV_32FC1 Mat (copied).
cv::Mat float_mat(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kFloat).contiguous();
  return cv::Mat(static_cast<int>(c.size(0)), static_cast<int>(c.size(1)), CV_32FC1, c.data_ptr()).clone();
}

class GlomSamTileSegmenter : public TileSegmenter {
 public:
  explicit GlomSamTileSegmenter(const SegmenterSpec& spec) {
    require_checkpoint(spec);
    const glomsam::GlomSamConfig cfg = glomsam_config(spec);
    model_ = glomsam::GlomSamModel::load(spec.checkpoint, cfg, spec.precision);
    input_side_ = static_cast<int>(cfg.sam.img_size);
    nlohmann::json config{{"model", "glomsam"},
                          {"checkpoint", fs::path(spec.checkpoint).filename().string()},
                          {"checkpoint_fingerprint", file_fingerprint(spec.checkpoint)},
                          {"config", cfg.to_json_object()}};
    if (spec.precision != Precision::kFp32) config["precision"] = precision_names().name(spec.precision);
    config_ = config.dump();
  }
  std::string name() const override { return "glomsam"; }
  std::string config_json() const override { return config_; }
  void prepare(const SlideContext&) override {}
  TileMask segment(const cv::Mat& rgb, cv::Point) const override {
    const glomsam::PredictResult r = model_->predict(rgb, glomsam::PredictOptions{});
    TileMask out;
    out.mask = io::tensor_to_mat(r.mask.to(at::kByte).mul(255));
    out.score = float_mat(r.logits.sigmoid());
    return out;
  }

  int input_side() const override { return input_side_; }

 private:
  std::shared_ptr<glomsam::GlomSamModel> model_;
  std::string config_;
  int input_side_ = 0;
};

class SamBoxTileSegmenter : public TileSegmenter {
 public:
  explicit SamBoxTileSegmenter(const SegmenterSpec& spec) : name_(spec.name), min_box_(spec.min_box_px) {
    require_checkpoint(spec);
    NEPHRO_CHECK(min_box_ >= 1, "sam/medsam segmenter: min_box_px must be >= 1");
    const sam::SamConfig cfg = sam_config(spec);
    model_ = sam::SamModel::load(spec.checkpoint, cfg, spec.precision);
    input_side_ = static_cast<int>(cfg.img_size);
    nlohmann::json config{{"model", spec.name},
                          {"checkpoint", fs::path(spec.checkpoint).filename().string()},
                          {"checkpoint_fingerprint", file_fingerprint(spec.checkpoint)},
                          {"config", cfg.to_json_object()},
                          {"boxes_from", nlohmann::json::parse(detector_.config_json())},
                          {"min_box_px", min_box_}};
    if (spec.precision != Precision::kFp32) config["precision"] = precision_names().name(spec.precision);
    config_ = config.dump();
  }
  std::string name() const override { return name_; }
  int input_side() const override { return input_side_; }
  std::string config_json() const override { return config_; }
  void prepare(const SlideContext& context) override { detector_.prepare(context); }
  TileMask segment(const cv::Mat& rgb, cv::Point origin) const override {
    const TileMask det = detector_.segment(rgb, origin);
    cv::Mat labels, stats, centroids;
    const int n = cv::connectedComponentsWithStats(det.mask, labels, stats, centroids, 8, CV_32S);
    std::vector<float> boxes;
    for (int i = 1; i < n; ++i) {
      const int x = stats.at<int>(i, cv::CC_STAT_LEFT), y = stats.at<int>(i, cv::CC_STAT_TOP);
      const int w = stats.at<int>(i, cv::CC_STAT_WIDTH), h = stats.at<int>(i, cv::CC_STAT_HEIGHT);
      if (w < min_box_ || h < min_box_) continue;
      boxes.insert(boxes.end(), {static_cast<float>(x), static_cast<float>(y), static_cast<float>(x + w),
                                 static_cast<float>(y + h)});
    }
    TileMask out;
    out.mask = cv::Mat::zeros(rgb.size(), CV_8UC1);
    out.score = cv::Mat::zeros(rgb.size(), CV_32FC1);
    if (boxes.empty()) return out;
    const int64_t b = static_cast<int64_t>(boxes.size() / 4);
    const sam::ImageEmbedding emb = model_->encode(io::mat_to_tensor(rgb));
    const at::Tensor box_t = at::from_blob(boxes.data(), {b, 4}, at::kFloat).clone();
    const sam::SamResult r = model_->predict_boxes(emb, box_t, /*multimask=*/false);
    for (int64_t k = 0; k < b; ++k) {
      const cv::Mat m = io::tensor_to_mat(r.masks[k][0]);  // bool -> 0/255
      const float iou = r.iou[k][0].item<float>();
      cv::bitwise_or(out.mask, m, out.mask);
      cv::Mat higher = (out.score < iou) & m;
      out.score.setTo(iou, higher);
    }
    out.score = cv::max(cv::min(out.score, 1.0), 0.0);
    return out;
  }

 private:
  std::string name_;
  int min_box_;
  ClassicalDetector detector_;
  std::shared_ptr<sam::SamModel> model_;
  std::string config_;
  int input_side_ = 0;
};

}  // namespace

std::unique_ptr<TileSegmenter> make_segmenter(const SegmenterSpec& spec) {
  if (spec.name == "classical") {
    NEPHRO_CHECK(spec.checkpoint.empty(), "--segmenter classical takes no --checkpoint (it has no weights)");
    return std::make_unique<ClassicalDetector>();
  }
  if (spec.name == "glomsam") return std::make_unique<GlomSamTileSegmenter>(spec);
  if (spec.name == "sam" || spec.name == "medsam") return std::make_unique<SamBoxTileSegmenter>(spec);
  NEPHRO_FAIL("--segmenter: unknown segmenter '", spec.name, "' (expected one of: classical, glomsam, sam, medsam)");
}

}  // namespace nephroseg::slide
