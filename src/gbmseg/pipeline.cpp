// GBMSeg pipeline: reference state computed once, then per target resize -> features ->
// prompts -> segmenter -> mask at the original size (spec §1, §2, §10, §14).
#include "nephroseg/gbmseg/pipeline.h"

#include <ATen/ATen.h>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <chrono>
#include <utility>

#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/core/resize.h"
#include "nephroseg/gbmseg/postprocess.h"

namespace nephroseg::gbmseg {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// [N, D] float features of one image, checked against the grid.
void check_features(const at::Tensor& f, int grid, const std::string& what) {
  const int64_t n = static_cast<int64_t>(grid) * grid;
  NEPHRO_CHECK(f.defined() && f.dim() == 2 && f.size(0) == n && f.size(1) > 0,
               "GBMSeg pipeline: the feature extractor returned ",
               f.defined() ? c10::str(f.sizes()) : std::string("nothing"), " for the ", what,
               ", expected [", n, ", D] (grid ", grid, "x", grid, ")");
  NEPHRO_CHECK(at::isFloatingType(f.scalar_type()), "GBMSeg pipeline: the ", what,
               " features must be floating point, got ", f.scalar_type());
}

}  // namespace

cv::Mat resize_to_working(const cv::Mat& image, int size) {
  NEPHRO_CHECK(!image.empty(), "resize_to_working: empty image");
  NEPHRO_CHECK(image.depth() == CV_8U && image.channels() >= 1 && image.channels() <= 4,
               "resize_to_working: expected an 8-bit image with 1-4 channels, got depth ",
               image.depth(), " with ", image.channels(), " channel(s)");
  NEPHRO_CHECK(size > 0, "resize_to_working: size must be positive (got ", size, ")");
  cv::Mat out(size, size, CV_8UC(image.channels()));
  // Ref: main.py (Image.open(...).resize((image_size, image_size)), default = BICUBIC)
  pil_resize(image.data, image.rows, image.cols, image.channels(),
             static_cast<int64_t>(image.step[0]), out.data, size, size, PilFilter::kBicubic);
  return out;
}

cv::Mat resize_mask(const cv::Mat& mask, int width, int height, MaskResize mode) {
  NEPHRO_CHECK(!mask.empty() && mask.type() == CV_8UC1, "resize_mask: expected a CV_8UC1 mask");
  NEPHRO_CHECK(width > 0 && height > 0, "resize_mask: bad size ", width, "x", height);
  if (mask.cols == width && mask.rows == height) return mask.clone();
  cv::Mat out;
  if (mode == MaskResize::kNearest) {
    cv::resize(mask, out, cv::Size(width, height), 0, 0, cv::INTER_NEAREST_EXACT);
  } else {
    cv::resize(mask, out, cv::Size(width, height), 0, 0, cv::INTER_LINEAR);
    cv::threshold(out, out, 127, 255, cv::THRESH_BINARY);  // >= 128 -> 255
  }
  return out;
}

GbmSegPipeline::GbmSegPipeline(std::shared_ptr<PatchFeatureExtractor> features,
                               std::shared_ptr<PointPromptSegmenter> segmenter,
                               PromptOptions options, PipelineOptions pipeline_options)
    : features_(std::move(features)),
      segmenter_(std::move(segmenter)),
      options_(options),
      pipeline_options_(pipeline_options) {
  NEPHRO_CHECK(features_ != nullptr, "GBMSeg pipeline: no feature extractor given");
  NEPHRO_CHECK(segmenter_ != nullptr, "GBMSeg pipeline: no segmenter given");
  const int p = features_->patch_size();
  NEPHRO_CHECK(options_.patch_size == p, "GBMSeg pipeline: the prompt options use patch size ",
               options_.patch_size, " but the feature extractor '", features_->name(),
               "' describes ", p, "-pixel patches");
  NEPHRO_CHECK(options_.size > 0 && options_.size % p == 0, "GBMSeg pipeline: the working size ",
               options_.size, " must be a positive multiple of the patch size ", p);
}

namespace {

// The one-shot reference at S x S: both resized the authors' way.
void resize_reference(const cv::Mat& image_rgb, const cv::Mat& mask, int S, cv::Mat& image_s, cv::Mat& mask_s) {
  NEPHRO_CHECK(!image_rgb.empty() && image_rgb.type() == CV_8UC3,
               "GBMSeg pipeline: the reference image must be 8-bit RGB (CV_8UC3)");
  NEPHRO_CHECK(!mask.empty() && mask.depth() == CV_8U && mask.channels() <= 4,
               "GBMSeg pipeline: the reference mask must be 8-bit with 1-4 channels");
  if (mask.size() != image_rgb.size()) {
    // The authors resize both to S x S independently and never compare the sizes.
    log_warn("GBMSeg: the reference mask is ", mask.cols, "x", mask.rows,
             " but the reference image is ", image_rgb.cols, "x", image_rgb.rows,
             "; both are resized to ", S, "x", S);
  }
  image_s = resize_to_working(image_rgb, S);
  mask_s = resize_to_working(mask, S);
}

}  // namespace

void GbmSegPipeline::set_reference(const cv::Mat& image_rgb, const cv::Mat& mask) {
  const auto t0 = Clock::now();
  cv::Mat image_s, mask_s;
  resize_reference(image_rgb, mask, options_.size, image_s, mask_s);
  const at::Tensor f = features_->extract(image_s);  // [G*G, D]
  set_reference_working(image_s, mask_s, f);
  ref_seconds_ = seconds_since(t0);
}

void GbmSegPipeline::add_reference(const cv::Mat& image_rgb, const cv::Mat& mask) {
  NEPHRO_CHECK(has_reference(), "GBMSeg pipeline: add_reference() needs set_reference() first");
  const auto t0 = Clock::now();
  cv::Mat image_s, mask_s;
  resize_reference(image_rgb, mask, options_.size, image_s, mask_s);
  const at::Tensor f = features_->extract(image_s);
  append_reference(image_s, mask_s, f);
  ref_seconds_ += seconds_since(t0);
}

void GbmSegPipeline::set_reference_working(const cv::Mat& image_working,
                                           const cv::Mat& mask_working,
                                           const at::Tensor& features) {
  ref_images_.clear();
  ref_masks_.clear();
  ref_features_ = at::Tensor();
  ref_sets_ = PatchSets{};
  ref_seconds_ = 0.0;
  append_reference(image_working, mask_working, features);
}

void GbmSegPipeline::add_reference_working(const cv::Mat& image_working, const cv::Mat& mask_working,
                                           const at::Tensor& features) {
  NEPHRO_CHECK(has_reference(), "GBMSeg pipeline: add_reference_working() needs a reference first");
  append_reference(image_working, mask_working, features);
}

void GbmSegPipeline::append_reference(const cv::Mat& image_working, const cv::Mat& mask_working,
                                      const at::Tensor& features) {
  const int S = options_.size;
  NEPHRO_CHECK(image_working.rows == S && image_working.cols == S &&
                   image_working.type() == CV_8UC3,
               "GBMSeg pipeline: the working reference image must be ", S, "x", S, " RGB");
  NEPHRO_CHECK(mask_working.rows == S && mask_working.cols == S && mask_working.depth() == CV_8U &&
                   mask_working.channels() <= 4,
               "GBMSeg pipeline: the working reference mask must be ", S, "x", S,
               " 8-bit with 1-4 channels");
  check_features(features, options_.grid(), "reference");
  if (ref_features_.defined()) {
    NEPHRO_CHECK(features.size(1) == ref_features_.size(1), "GBMSeg pipeline: reference ",
                 ref_images_.size() + 1, " has ", features.size(1), "-dimensional features, the first one ",
                 ref_features_.size(1));
  }
  const PatchSets sets = gbmseg::reference_patch_sets(mask_working, options_.patch_set_options());
  if (sets.fg.empty()) {
    log_warn("GBMSeg: the reference mask", ref_images_.empty() ? "" : detail::concat(" ", ref_images_.size() + 1),
             " has no foreground patch at ", S, "x", S,
             ref_images_.empty() ? " (every target falls back to the default positive point)" : "");
  }
  // Pooled patch k of reference r is row r*G*G + k of the stacked features.
  const int64_t offset = static_cast<int64_t>(ref_images_.size()) * options_.grid() * options_.grid();
  ref_sets_.grid = sets.grid;
  for (int64_t k : sets.fg) ref_sets_.fg.push_back(offset + k);
  for (int64_t k : sets.bg) ref_sets_.bg.push_back(offset + k);
  const at::Tensor f = features.to(at::kFloat).contiguous();
  ref_features_ = ref_features_.defined() ? at::cat({ref_features_, f}, 0) : f;
  ref_images_.push_back(image_working.clone());
  ref_masks_.push_back(mask_working.clone());
}

SegmentResult GbmSegPipeline::segment(const cv::Mat& target_rgb) const {
  NEPHRO_CHECK(has_reference(), "GBMSeg pipeline: set_reference() must be called before segment()");
  NEPHRO_CHECK(!target_rgb.empty() && target_rgb.type() == CV_8UC3,
               "GBMSeg pipeline: the target image must be 8-bit RGB (CV_8UC3)");
  const int S = options_.size;
  const int grid = options_.grid();
  SegmentResult r;
  r.original_width = target_rgb.cols;
  r.original_height = target_rgb.rows;
  const auto t_start = Clock::now();

  auto t0 = Clock::now();
  r.image_working = resize_to_working(target_rgb, S);
  r.timings.resize = seconds_since(t0);

  t0 = Clock::now();
  const at::Tensor tgt = features_->extract(r.image_working);  // [G*G, D]
  r.timings.features = seconds_since(t0);
  check_features(tgt, grid, "target");
  NEPHRO_CHECK(tgt.size(1) == ref_features_.size(1), "GBMSeg pipeline: target features have ",
               tgt.size(1), " dimensions, the reference's ", ref_features_.size(1));

  t0 = Clock::now();
  const FeatureMatches matches = match_features(ref_features_, tgt);
  r.prompts = generate_prompts_from_matches(ref_sets_, matches, options_);
  const SamPointPrompts packed = pack_sam_prompts(r.prompts.ape.final_pos, r.prompts.ape.final_neg);
  r.timings.prompts = seconds_since(t0);

  // The fallback points (250, 250) / (10, 10) are absolute pixels (spec §9): at a small
  // working size they can fall outside the image, which the segmenters reject.
  r.points.reserve(packed.points.size());
  bool clamped = false;
  for (const Point& p : packed.points) {
    const int x = std::clamp(p.x, 0, S - 1), y = std::clamp(p.y, 0, S - 1);
    clamped = clamped || x != p.x || y != p.y;
    r.points.emplace_back(static_cast<float>(x), static_cast<float>(y));
  }
  r.labels = packed.labels;
  if (clamped) {
    const std::string w = detail::concat("a prompt point lies outside the ", S, "x", S,
                                         " image (fallback point); clamped to the image");
    log_warn("GBMSeg: ", w);
    r.prompts.warnings.push_back(w);
  }

  t0 = Clock::now();
  cv::Mat m = segmenter_->segment(r.image_working, r.points, r.labels);
  r.timings.segment = seconds_since(t0);
  NEPHRO_CHECK(m.rows == S && m.cols == S && m.type() == CV_8UC1, "GBMSeg pipeline: the segmenter '",
               segmenter_->name(), "' returned a ", m.cols, "x", m.rows, " mask of type ", m.type(),
               ", expected ", S, "x", S, " CV_8UC1");

  t0 = Clock::now();
  cv::Mat binary;
  cv::threshold(m, binary, 0, 255, cv::THRESH_BINARY);  // any non-zero -> 255
  if (pipeline_options_.largest_contour) binary = keep_largest_contour(binary);
  r.mask_working = binary;
  r.mask = pipeline_options_.resize_to_original
               ? resize_mask(binary, r.original_width, r.original_height,
                             pipeline_options_.mask_resize)
               : binary.clone();
  r.timings.postprocess = seconds_since(t0);
  r.timings.total = seconds_since(t_start);
  return r;
}

}  // namespace nephroseg::gbmseg
