// Tests of the weight-free GBMSeg backends and the demo: interface contracts, error
// paths, and the quality floors (phantoms with other seeds than the reference: mean
// Dice >= 0.85; the real TEM sample matched onto itself: Dice >= 0.80).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "nephroseg/gbmseg/classical_features.h"
#include "nephroseg/gbmseg/classical_segmenter.h"
#include "nephroseg/workloads/demo.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/threads.h"
#include "nephroseg/gbmseg/model_backends.h"
#include "nephroseg/gbmseg/pipeline.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/measure/phantom.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using namespace nephroseg;

namespace {

double dice_of(const cv::Mat& a, const cv::Mat& b) {
  const double inter = cv::countNonZero((a > 0) & (b > 0));
  const double sum = cv::countNonZero(a > 0) + cv::countNonZero(b > 0);
  return sum == 0 ? 1.0 : 2.0 * inter / sum;
}

cv::Mat grey_to_rgb(const cv::Mat& g) {
  cv::Mat c;
  cv::cvtColor(g, c, cv::COLOR_GRAY2RGB);
  return c;
}

// A grey image with a dark horizontal band (rows 40..63) on a textured light background.
cv::Mat band_image(cv::Mat* mask) {
  cv::Mat img(112, 112, CV_8UC1);
  cv::RNG rng(7);
  rng.fill(img, cv::RNG::NORMAL, 170, 12);
  *mask = cv::Mat::zeros(112, 112, CV_8UC1);
  (*mask)(cv::Rect(0, 40, 112, 24)).setTo(255);
  cv::Mat band(img.size(), CV_8UC1);
  rng.fill(band, cv::RNG::NORMAL, 80, 4);
  band.copyTo(img, *mask);
  return grey_to_rgb(img);
}

std::shared_ptr<gbmseg::GbmSegPipeline> classical_pipeline() {
  return std::make_shared<gbmseg::GbmSegPipeline>(std::make_shared<gbmseg::ClassicalFeatureExtractor>(),
                                                  std::make_shared<gbmseg::ClassicalSegmenter>(),
                                                  gbmseg::PromptOptions::authors_code());
}

}  // namespace

TEST(ClassicalFeatures, ShapeDimsAndDeterminism) {
  configure_threads(2);
  cv::Mat mask;
  const cv::Mat img = band_image(&mask);
  gbmseg::ClassicalFeatureExtractor fx;
  EXPECT_EQ(fx.patch_size(), 14);
  EXPECT_NE(fx.name().find("classical"), std::string::npos);
  const at::Tensor f = fx.extract(img);
  ASSERT_EQ(f.dim(), 2);
  EXPECT_EQ(f.size(0), 64);  // (112 / 14)^2
  EXPECT_EQ(f.size(1), fx.options().dims());
  EXPECT_EQ(f.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::isfinite(f).all().item<bool>());
  EXPECT_TRUE(at::equal(f, fx.extract(img)));
}

TEST(ClassicalFeatures, InvariantToExposureAndContrast) {
  // The per-image robust normalisation removes a gain and offset of the grey levels.
  cv::Mat mask;
  const cv::Mat img = band_image(&mask);
  cv::Mat changed;
  img.convertTo(changed, CV_8U, 0.6, 40.0);
  gbmseg::ClassicalFeatureExtractor fx;
  const at::Tensor a = fx.extract(img), b = fx.extract(changed);
  const double scale = a.abs().max().item<double>();
  EXPECT_LT((a - b).abs().max().item<double>(), 0.1 * scale);
}

TEST(ClassicalFeatures, SeparatesMembraneFromBackground) {
  // Patches fully inside the band are nearer each other than to background patches.
  cv::Mat mask;
  const at::Tensor f = gbmseg::ClassicalFeatureExtractor().extract(band_image(&mask));  // [64, D]
  // Band rows 40..63 cover patch row 3 (rows 42..55) entirely; patch row 0 is background.
  const at::Tensor band = f.slice(0, 3 * 8, 4 * 8), bg = f.slice(0, 0, 8);
  const double within = (band.unsqueeze(0) - band.unsqueeze(1)).norm(2, {2}).max().item<double>();
  const double across = (band.unsqueeze(0) - bg.unsqueeze(1)).norm(2, {2}).min().item<double>();
  EXPECT_LT(within, across);
}

TEST(ClassicalFeatures, RejectsBadInput) {
  gbmseg::ClassicalFeatureExtractor fx;
  EXPECT_THROW(fx.extract(cv::Mat()), Error);
  EXPECT_THROW(fx.extract(cv::Mat::zeros(100, 112, CV_8UC3)), Error);  // not a multiple of 14
  EXPECT_THROW(fx.extract(cv::Mat::zeros(112, 112, CV_32FC3)), Error);
  const at::Tensor flat = fx.extract(cv::Mat(112, 112, CV_8UC3, cv::Scalar(90, 90, 90)));
  EXPECT_TRUE(at::isfinite(flat).all().item<bool>());
}

TEST(ClassicalSegmenter, SegmentsBandFromPoints) {
  cv::Mat truth;
  const cv::Mat img = band_image(&truth);
  gbmseg::ClassicalSegmenter seg;
  const std::vector<cv::Point2f> pts{{20, 52}, {60, 51}, {95, 52}, {30, 10}, {80, 100}};
  const std::vector<int> labels{1, 1, 1, 0, 0};
  const cv::Mat m = seg.segment(img, pts, labels);
  ASSERT_EQ(m.size(), img.size());
  ASSERT_EQ(m.type(), CV_8UC1);
  double lo = 0, hi = 0;
  cv::minMaxLoc(m, &lo, &hi);
  EXPECT_EQ(hi, 255);
  EXPECT_EQ(cv::countNonZero((m != 0) & (m != 255)), 0);
  EXPECT_GT(dice_of(m, truth), 0.9);
}

TEST(ClassicalSegmenter, EdgeCases) {
  cv::Mat truth;
  const cv::Mat img = band_image(&truth);
  gbmseg::ClassicalSegmenter seg;
  // No positive point: empty mask; positives outside the image are ignored.
  EXPECT_EQ(cv::countNonZero(seg.segment(img, {{30, 10}}, {0})), 0);
  EXPECT_EQ(cv::countNonZero(seg.segment(img, {{-5, 10}, {500, 3}}, {1, 1})), 0);
  // Positives only: the farthest-looking pixels stand in for the negatives.
  const cv::Mat m = seg.segment(img, {{20, 52}, {90, 52}}, {1, 1});
  EXPECT_GT(dice_of(m, truth), 0.8);
  // Bad arguments.
  EXPECT_THROW(seg.segment(img, {{20, 52}}, {1, 0}), Error);
  EXPECT_THROW(seg.segment(img, {{20, 52}}, {2}), Error);
  EXPECT_THROW(seg.segment(cv::Mat(), {{20, 52}}, {1}), Error);
}

TEST(ClassicalBackends, KnownToTheGbmSegFactoryWithoutRegistration) {
  gbmseg::BackendSpec spec;
  spec.kind = "classical";
  auto fx = gbmseg::make_feature_extractor(spec);
  auto sg = gbmseg::make_point_segmenter(spec);
  ASSERT_TRUE(fx && sg);
  EXPECT_NE(fx->name().find("classical"), std::string::npos);
  EXPECT_NE(sg->name().find("classical"), std::string::npos);
  const auto fk = gbmseg::feature_extractor_kinds(), sk = gbmseg::point_segmenter_kinds();
  EXPECT_NE(std::find(fk.begin(), fk.end(), "classical"), fk.end());
  EXPECT_NE(std::find(sk.begin(), sk.end(), "classical"), sk.end());
}

// Quality floor 1: phantoms drawn with other seeds than the reference phantom.
TEST(ClassicalQuality, PhantomsOtherSeedsMeanDice) {
  configure_threads(2);
  measure::PhantomOptions po = workloads::demo_phantom_options();
  po.seed = 101;
  const measure::Phantom ref = measure::generate_phantom(po);
  auto pipe = classical_pipeline();
  pipe->set_reference(grey_to_rgb(ref.image), ref.mask);
  double sum = 0;
  const int n = 5;
  for (int i = 0; i < n; ++i) {
    po.seed = 201 + i;
    const measure::Phantom t = measure::generate_phantom(po);
    const gbmseg::SegmentResult r = pipe->segment(grey_to_rgb(t.image));
    ASSERT_EQ(r.mask.size(), t.mask.size());
    const double d = dice_of(r.mask, t.mask);
    RecordProperty("dice_seed_" + std::to_string(po.seed), std::to_string(d));
    EXPECT_GT(d, 0.6) << "phantom seed " << po.seed;
    sum += d;
  }
  const double mean = sum / n;
  RecordProperty("mean_dice", std::to_string(mean));
  EXPECT_GE(mean, 0.85);
}

// Quality floor 2: the real TEM sample, one-shot from the reference onto itself.
TEST(ClassicalQuality, RealSampleSelfMatchDice) {
  NEPHRO_REQUIRE_SHARED("data/gbmseg_sample/reference_image/001_264193_2.png");
  configure_threads(2);
  const std::string dir = test::shared_path("data/gbmseg_sample");
  const cv::Mat image = io::read_image_rgb(dir + "/reference_image/001_264193_2.png");
  const cv::Mat mask = io::read_mask(dir + "/reference_mask/001_264193_2.png");
  auto pipe = classical_pipeline();
  pipe->set_reference(image, mask);
  const gbmseg::SegmentResult r = pipe->segment(image);
  const double d = dice_of(r.mask, mask);
  RecordProperty("dice", std::to_string(d));
  EXPECT_GE(d, 0.80);
  // The prompts must be sane: positives on the membrane, negatives off it.
  cv::Mat working = gbmseg::resize_to_working(mask, 560);
  if (working.channels() > 1) cv::cvtColor(working, working, cv::COLOR_RGB2GRAY);
  for (const auto& p : r.prompts.ape.final_pos) EXPECT_GT(working.at<uint8_t>(p.y, p.x), 0);
  for (const auto& p : r.prompts.ape.final_neg) EXPECT_EQ(working.at<uint8_t>(p.y, p.x), 0);
}

TEST(Demo, FindsModelFilesByOfficialNames) {
  const std::string dir = test::temp_dir("demo_models");
  EXPECT_TRUE(workloads::find_model_files(dir).dinov2_checkpoint.empty());
  EXPECT_TRUE(workloads::find_model_files("").sam_checkpoint.empty());
  std::ofstream(fs::path(dir) / "sam_vit_b_01ec64.pth") << "x";
  std::ofstream(fs::path(dir) / "sam_vit_l_0b3195.pth") << "x";
  std::ofstream(fs::path(dir) / "dinov2_vitl14_pretrain.pth") << "x";
  const workloads::ModelFiles m = workloads::find_model_files(dir);
  EXPECT_EQ(m.sam_type, "vit_l");  // the authors' SAM is preferred
  EXPECT_EQ(m.dinov2_type, "vitl14");
  EXPECT_EQ(fs::path(m.dinov2_checkpoint).filename(), "dinov2_vitl14_pretrain.pth");
  // Explicit model backends without checkpoints are errors; "auto" falls back.
  const std::string empty = test::temp_dir("demo_no_models");
  EXPECT_THROW(workloads::resolve_backends(empty, "dinov2", "classical"), Error);
  EXPECT_THROW(workloads::resolve_backends(empty, "classical", "sam"), Error);
  EXPECT_THROW(workloads::resolve_backends(empty, "bogus", "auto"), Error);
  const workloads::ResolvedBackends r = workloads::resolve_backends(empty, "auto", "auto");
  EXPECT_EQ(r.features_kind, "classical");
  EXPECT_EQ(r.segmenter_kind, "classical");
  EXPECT_EQ(r.notes.size(), 2u);
  // Files with official names that are not checkpoints: "auto" falls back, explicit
  // kinds fail (the smallest models, so that building them before loading is cheap).
  const std::string junk = test::temp_dir("demo_junk_models");
  std::ofstream(fs::path(junk) / "sam_vit_b_01ec64.pth") << "x";
  std::ofstream(fs::path(junk) / "dinov2_vits14_pretrain.pth") << "x";
  const workloads::ResolvedBackends bad = workloads::resolve_backends(junk, "auto", "auto");
  EXPECT_EQ(bad.features_kind, "classical");
  EXPECT_EQ(bad.segmenter_kind, "classical");
  EXPECT_EQ(bad.notes.size(), 2u);
  EXPECT_THROW(workloads::resolve_backends(junk, "classical", "sam"), Error);
}

TEST(Demo, RunsWeightFreeAndWritesEverything) {
  configure_threads(2);
  workloads::DemoOptions o;
  o.out_dir = test::temp_dir("demo_run");
  o.models_dir = test::temp_dir("demo_run_models");  // empty: weight-free
  o.num_targets = 2;
  const workloads::DemoResult r = workloads::run_demo(o);
  EXPECT_TRUE(r.weight_free);
  ASSERT_EQ(r.targets.size(), 2u);
  for (const auto& t : r.targets) {
    EXPECT_GT(t.dice, 0.7) << t.name;
    EXPECT_NEAR(t.true_thickness_nm, 320.0, 1e-9);
    EXPECT_NEAR(t.measured_direct_nm, t.true_thickness_nm, 0.25 * t.true_thickness_nm) << t.name;
    for (const char* sub : {"images", "truth", "masks", "overlays"})
      EXPECT_TRUE(fs::is_regular_file(fs::path(o.out_dir) / sub / (t.name + ".png"))) << sub << "/" << t.name;
    const cv::Mat m = io::read_mask((fs::path(o.out_dir) / "masks" / (t.name + ".png")).string());
    EXPECT_EQ(m.size(), cv::Size(512, 512));
  }
  for (const char* f : {"reference/image.png", "reference/mask.png", "report/report.html", "report/per_image.csv",
                        "thickness.csv", "demo.json"})
    EXPECT_TRUE(fs::is_regular_file(fs::path(o.out_dir) / f)) << f;
  std::ifstream in(fs::path(o.out_dir) / "demo.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_EQ(j["backends"]["features_kind"], "classical");
  EXPECT_EQ(j["backends"]["segmenter_kind"], "classical");
  EXPECT_EQ(j["targets"].size(), 2u);
  EXPECT_NEAR(j["mean_dice"].get<double>(), r.mean_dice, 1e-12);
  EXPECT_THROW(
      [] {
        workloads::DemoOptions bad;
        bad.num_targets = 0;
        workloads::run_demo(bad);
      }(),
      Error);
}
