// End-to-end tests of the GBMSeg pipeline: the library (GbmSegPipeline with the tiny
// DINOv2/SAM checkpoints and with weight-free test backends) and the `nephroseg gbmseg`
// CLI on the real TEM sample (shared/data/gbmseg_sample).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <ATen/ATen.h>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "nephroseg/core/error.h"
#include "nephroseg/gbmseg/model_backends.h"
#include "nephroseg/gbmseg/pipeline.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using namespace nephroseg;
using namespace nephroseg::gbmseg;
using nephroseg::test::binary_dir;
using nephroseg::test::shared_path;
using nephroseg::test::temp_dir;
using nephroseg::test::CliRun;
using nephroseg::test::have_cli;
using nephroseg::test::run_cli;

namespace {

constexpr const char* kRefImage = "data/gbmseg_sample/reference_image/001_264193_2.png";
constexpr const char* kRefMask = "data/gbmseg_sample/reference_mask/001_264193_2.png";
constexpr const char* kTarget = "data/gbmseg_sample/target_image/001_250744_2.png";
constexpr const char* kDino = "golden/models/dinov2_tiny.pth";
constexpr const char* kDinoCfg = "golden/models/dinov2_tiny.json";
constexpr const char* kSam = "golden/models/sam_tiny.pth";
constexpr const char* kSamCfg = "golden/models/sam_tiny.json";

#define REQUIRE_SAMPLE_AND_MODELS()      \
  NEPHRO_REQUIRE_SHARED(kRefImage);      \
  NEPHRO_REQUIRE_SHARED(kRefMask);       \
  NEPHRO_REQUIRE_SHARED(kTarget);        \
  NEPHRO_REQUIRE_SHARED(kDino);          \
  NEPHRO_REQUIRE_SHARED(kDinoCfg);       \
  NEPHRO_REQUIRE_SHARED(kSam);           \
  NEPHRO_REQUIRE_SHARED(kSamCfg)

BackendSpec dino_spec() {
  BackendSpec s;
  s.kind = "dinov2";
  s.checkpoint = shared_path(kDino);
  s.config_json = shared_path(kDinoCfg);
  return s;
}

BackendSpec sam_spec() {
  BackendSpec s;
  s.kind = "sam";
  s.checkpoint = shared_path(kSam);
  s.config_json = shared_path(kSamCfg);
  return s;
}

// Wraps a backend and counts the calls (reference features must be computed once).
class CountingExtractor : public PatchFeatureExtractor {
 public:
  explicit CountingExtractor(std::shared_ptr<PatchFeatureExtractor> inner) : inner_(std::move(inner)) {}
  std::string name() const override { return inner_->name(); }
  int patch_size() const override { return inner_->patch_size(); }
  at::Tensor extract(const cv::Mat& rgb) const override {
    ++calls;
    return inner_->extract(rgb);
  }
  mutable std::atomic<int> calls{0};

 private:
  std::shared_ptr<PatchFeatureExtractor> inner_;
};

class CountingSegmenter : public PointPromptSegmenter {
 public:
  explicit CountingSegmenter(std::shared_ptr<PointPromptSegmenter> inner) : inner_(std::move(inner)) {}
  std::string name() const override { return inner_->name(); }
  cv::Mat segment(const cv::Mat& rgb, const std::vector<cv::Point2f>& points,
                  const std::vector<int>& labels) const override {
    ++calls;
    return inner_->segment(rgb, points, labels);
  }
  mutable std::atomic<int> calls{0};

 private:
  std::shared_ptr<PointPromptSegmenter> inner_;
};

// Weight-free test backends. Features: one-hot of the patch position (every patch
// unique, so a target identical to the reference matches itself exactly).
class PositionFeatures : public PatchFeatureExtractor {
 public:
  std::string name() const override { return "test: one-hot patch position"; }
  at::Tensor extract(const cv::Mat& rgb) const override {
    const int64_t g = rgb.rows / 14;
    return at::eye(g * g, at::kFloat);  // [N, N]
  }
};

// Paints a disk of radius 10 around every positive point.
class DiskSegmenter : public PointPromptSegmenter {
 public:
  std::string name() const override { return "test: disks at positives"; }
  cv::Mat segment(const cv::Mat& rgb, const std::vector<cv::Point2f>& points,
                  const std::vector<int>& labels) const override {
    cv::Mat m = cv::Mat::zeros(rgb.rows, rgb.cols, CV_8UC1);
    for (size_t i = 0; i < points.size(); ++i) {
      if (labels[i] == 1) cv::circle(m, cv::Point(points[i]), 10, cv::Scalar(255), cv::FILLED);
    }
    return m;
  }
};

std::set<uchar> values_of(const cv::Mat& m) {
  std::set<uchar> v;
  for (int y = 0; y < m.rows; ++y) {
    for (int x = 0; x < m.cols; ++x) v.insert(m.at<uchar>(y, x));
  }
  return v;
}


nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

std::string models_args() {
  return " --dinov2 " + shared_path(kDino) + " --dinov2-config " + shared_path(kDinoCfg) +
         " --sam " + shared_path(kSam) + " --sam-config " + shared_path(kSamCfg) +
         " --reference-image " + shared_path(kRefImage) + " --reference-mask " +
         shared_path(kRefMask);
}

// Index of a column in a CSV header (fails the test when absent).
size_t column(const io::CsvRow& header, const std::string& name) {
  auto it = std::find(header.begin(), header.end(), name);
  EXPECT_NE(it, header.end()) << "summary.csv has no column " << name;
  return static_cast<size_t>(it - header.begin());
}

}  // namespace

// ---------------------------------------------------------------------------
// Library
// ---------------------------------------------------------------------------

TEST(GbmSegPipeline, TinyModelsOnTheSampleComputeReferenceFeaturesOnce) {
  REQUIRE_SAMPLE_AND_MODELS();
  auto fx = std::make_shared<CountingExtractor>(make_feature_extractor(dino_spec()));
  auto sg = std::make_shared<CountingSegmenter>(make_point_segmenter(sam_spec()));
  GbmSegPipeline pipe(fx, sg, PromptOptions::authors_code());
  const cv::Mat ref = io::read_image_rgb(shared_path(kRefImage));
  const cv::Mat ref_mask = io::read_image_raw(shared_path(kRefMask));
  pipe.set_reference(ref, ref_mask);
  EXPECT_EQ(fx->calls.load(), 1);
  // Spec §4: the bicubic-resized sample mask has 167 fg and 1130 bg patches.
  EXPECT_EQ(pipe.reference_patch_sets().fg.size(), 167u);
  EXPECT_EQ(pipe.reference_patch_sets().bg.size(), 1130u);
  EXPECT_EQ(pipe.reference_features().size(0), 1600);
  EXPECT_EQ(pipe.reference_features().size(1), 48);  // dinov2_tiny embed_dim

  const cv::Mat target = io::read_image_rgb(shared_path(kTarget));
  const SegmentResult a = pipe.segment(target);
  const SegmentResult b = pipe.segment(target);
  EXPECT_EQ(fx->calls.load(), 3) << "one feature pass per target, reference cached";
  EXPECT_EQ(sg->calls.load(), 2);

  EXPECT_EQ(a.original_width, 512);
  EXPECT_EQ(a.original_height, 512);
  ASSERT_EQ(a.mask.type(), CV_8UC1);
  EXPECT_EQ(a.mask.size(), cv::Size(512, 512));
  EXPECT_EQ(a.mask_working.size(), cv::Size(560, 560));
  EXPECT_EQ(a.image_working.size(), cv::Size(560, 560));
  for (uchar v : values_of(a.mask)) EXPECT_TRUE(v == 0 || v == 255) << int(v);
  EXPECT_EQ(cv::norm(a.mask, b.mask, cv::NORM_INF), 0.0) << "deterministic";

  // The segmenter got final_pos (label 1) then final_neg (label 0), on the 14-px lattice.
  const auto& ape = a.prompts.ape;
  ASSERT_EQ(a.points.size(), ape.final_pos.size() + ape.final_neg.size());
  ASSERT_EQ(a.labels.size(), a.points.size());
  EXPECT_FALSE(ape.final_pos.empty());
  EXPECT_FALSE(ape.final_neg.empty());
  for (size_t i = 0; i < a.points.size(); ++i) {
    const bool pos = i < ape.final_pos.size();
    EXPECT_EQ(a.labels[i], pos ? 1 : 0);
    const Point& q = pos ? ape.final_pos[i] : ape.final_neg[i - ape.final_pos.size()];
    EXPECT_EQ(a.points[i].x, static_cast<float>(q.x));
    EXPECT_EQ(a.points[i].y, static_cast<float>(q.y));
    EXPECT_EQ((q.x - 7) % 14, 0);
    EXPECT_EQ((q.y - 7) % 14, 0);
  }
  EXPECT_TRUE(a.prompts.warnings.empty());
  EXPECT_GT(a.timings.features, 0.0);
  EXPECT_GT(a.timings.segment, 0.0);
  EXPECT_GE(a.timings.total, a.timings.features + a.timings.segment);

  // Same prompts as generate_prompts on freshly computed features of both images.
  const at::Tensor ref_f = fx->extract(pipe.reference_image_working());
  const at::Tensor tgt_f = fx->extract(a.image_working);
  const PromptResult direct = generate_prompts(ref_f, tgt_f, 40, pipe.reference_mask_working(),
                                               PromptOptions::authors_code());
  EXPECT_EQ(direct.ape.final_pos, ape.final_pos);
  EXPECT_EQ(direct.ape.final_neg, ape.final_neg);
}

TEST(GbmSegPipeline, IdenticalTargetMatchesItselfWithTestBackends) {
  NEPHRO_REQUIRE_SHARED(kRefImage);
  NEPHRO_REQUIRE_SHARED(kRefMask);
  PromptOptions opt = PromptOptions::authors_code();
  opt.size = 280;  // G = 20
  PipelineOptions popt;
  popt.resize_to_original = false;
  GbmSegPipeline pipe(std::make_shared<PositionFeatures>(), std::make_shared<DiskSegmenter>(), opt,
                      popt);
  const cv::Mat ref = io::read_image_rgb(shared_path(kRefImage));
  pipe.set_reference(ref, io::read_image_raw(shared_path(kRefMask)));
  const PatchSets& sets = pipe.reference_patch_sets();
  ASSERT_FALSE(sets.fg.empty());
  ASSERT_FALSE(sets.bg.empty());
  const SegmentResult r = pipe.segment(ref);
  // Unique features: every patch matches itself forward and backward, so the positives are
  // exactly the fg patch centres and the negatives the bg centres (before APE).
  EXPECT_EQ(r.prompts.pos_initial, patch_centres(sets.fg, 20));
  EXPECT_EQ(r.prompts.neg_initial, patch_centres(sets.bg, 20));
  const std::set<std::pair<int, int>> fg = [&] {
    std::set<std::pair<int, int>> s;
    for (const Point& q : patch_centres(sets.fg, 20)) s.insert({q.x, q.y});
    return s;
  }();
  for (const Point& q : r.prompts.ape.final_pos) EXPECT_TRUE(fg.count({q.x, q.y}));
  EXPECT_EQ(r.mask.size(), cv::Size(280, 280)) << "resize_to_original = false keeps S";
  for (const Point& q : r.prompts.ape.final_pos) EXPECT_EQ(r.mask.at<uchar>(q.y, q.x), 255);
}

TEST(GbmSegPipeline, RejectsMisuse) {
  auto fx = std::make_shared<PositionFeatures>();
  auto sg = std::make_shared<DiskSegmenter>();
  PromptOptions opt = PromptOptions::authors_code();
  GbmSegPipeline pipe(fx, sg, opt);
  const cv::Mat img(100, 120, CV_8UC3, cv::Scalar(10, 20, 30));
  EXPECT_THROW(pipe.segment(img), Error);  // no reference yet
  opt.size = 565;
  EXPECT_THROW(GbmSegPipeline(fx, sg, opt), Error);  // not a multiple of 14
  EXPECT_THROW(GbmSegPipeline(nullptr, sg, PromptOptions::authors_code()), Error);
  BackendSpec unknown;
  unknown.kind = "classical-not-yet";
  try {
    make_feature_extractor(unknown);
    FAIL() << "unknown kind accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dinov2"), std::string::npos) << e.what();
  }
  // The registry lets other backends plug in.
  register_feature_extractor_kind("test-position", [](const BackendSpec&) {
    return std::make_shared<PositionFeatures>();
  });
  BackendSpec spec;
  spec.kind = "test-position";
  EXPECT_EQ(make_feature_extractor(spec)->name(), "test: one-hot patch position");
  const auto kinds = feature_extractor_kinds();
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "test-position"), kinds.end());
}

TEST(GbmSegPipeline, MaskResizeModes) {
  // 2x2 checker of 0/255 -> 4x4: nearest replicates each pixel into a 2x2 block.
  cv::Mat m = (cv::Mat_<uchar>(2, 2) << 255, 0, 0, 255);
  const cv::Mat n = resize_mask(m, 4, 4, MaskResize::kNearest);
  const cv::Mat expected = (cv::Mat_<uchar>(4, 4) << 255, 255, 0, 0, 255, 255, 0, 0, 0, 0, 255,
                            255, 0, 0, 255, 255);
  EXPECT_EQ(cv::norm(n, expected, cv::NORM_INF), 0.0);
  // Bilinear then >= 128: a 1-px wide line upscaled 3x stays 3 px wide, values 0/255.
  cv::Mat line = cv::Mat::zeros(5, 5, CV_8UC1);
  line.row(2).setTo(255);
  const cv::Mat b = resize_mask(line, 15, 15, MaskResize::kBilinearThreshold);
  for (uchar v : values_of(b)) EXPECT_TRUE(v == 0 || v == 255);
  EXPECT_EQ(cv::countNonZero(b.col(7)), 3);
  EXPECT_EQ(cv::countNonZero(b.row(7)), 15);
}

// ---------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------

TEST(GbmSegCli, BatchOutputsMetricsSkipAndFailures) {
  if (!have_cli()) GTEST_SKIP() << "build the nephroseg CLI first";
  REQUIRE_SAMPLE_AND_MODELS();
  // Targets: the real target, the reference image under another name (a second real TEM
  // image), and a corrupt file. Ground truth: the reference mask for the first two.
  const std::string root = temp_dir("gbmseg_cli");
  const std::string targets = root + "/targets", gt = root + "/gt", out = root + "/out";
  fs::create_directories(targets);
  fs::create_directories(gt);
  fs::copy_file(shared_path(kTarget), targets + "/a_target.png");
  fs::copy_file(shared_path(kRefImage), targets + "/b_reference.png");
  { std::ofstream(targets + "/c_broken.png") << "this is not a PNG file"; }
  fs::copy_file(shared_path(kRefMask), gt + "/a_target.png");
  fs::copy_file(shared_path(kRefMask), gt + "/b_reference.png");

  const std::string args = "gbmseg" + models_args() + " --target " + targets +
                           " --ground-truth " + gt + " --out " + out;
  const CliRun first = run_cli(args);
  EXPECT_NE(first.code, 0) << "a target failed: the exit code must say so\n" << first.output;
  EXPECT_NE(first.output.find("c_broken"), std::string::npos) << first.output;
  for (const char* name : {"a_target", "b_reference"}) {
    for (const char* suffix : {".png", ".prompts.json", ".overlay.png"}) {
      EXPECT_TRUE(fs::is_regular_file(out + "/" + name + suffix)) << name << suffix << "\n"
                                                                  << first.output;
    }
    const cv::Mat mask = io::read_image_raw(out + "/" + std::string(name) + ".png");
    EXPECT_EQ(mask.size(), cv::Size(512, 512)) << "written at the original size";
    EXPECT_EQ(mask.channels(), 1);
    const cv::Mat overlay = io::read_image_raw(out + "/" + std::string(name) + ".overlay.png");
    EXPECT_EQ(overlay.size(), cv::Size(512, 512));
  }
  EXPECT_FALSE(fs::exists(out + "/c_broken.png"));
  for (const auto& e : fs::directory_iterator(out)) {
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << "leftover " << e.path();
  }

  // Prompt record: stages, labels, parameters, backends.
  const nlohmann::json j = read_json(out + "/a_target.prompts.json");
  EXPECT_NE(j["backends"]["features"].get<std::string>().find("dinov2"), std::string::npos);
  EXPECT_NE(j["backends"]["segmenter"].get<std::string>().find("sam"), std::string::npos);
  EXPECT_EQ(j["options"]["size"], 560);
  EXPECT_EQ(j["options"]["d_ex_px"], 70.0);
  EXPECT_EQ(j["options"]["d_sp_hard_px"], 1.0);
  EXPECT_EQ(j["preset"], "authors-code");
  EXPECT_EQ(j["stages"]["ref_fg_idx"].size(), 167u);
  EXPECT_EQ(j["stages"]["ref_bg_idx"].size(), 1130u);
  const auto& sp = j["segmenter_prompts"];
  const size_t npos = j["stages"]["final_pos"].size(), nneg = j["stages"]["final_neg"].size();
  ASSERT_EQ(sp["points"].size(), npos + nneg);
  ASSERT_EQ(sp["labels"].size(), npos + nneg);
  for (size_t i = 0; i < npos + nneg; ++i) EXPECT_EQ(sp["labels"][i], i < npos ? 1 : 0);
  for (const char* stage : {"fwd_fg_pts", "bwd_pos_pts", "pts_pos_initial", "ape_neg_exclusive",
                            "ape_pos_sparse", "ape_neg_sparse", "hard_h2_pts"}) {
    EXPECT_TRUE(j["stages"].contains(stage)) << stage;
  }
  EXPECT_EQ(j["output"]["width"], 512);
  EXPECT_EQ(j["output"]["mask_resize"], "nearest");

  // summary.csv: one row per target + the mean row, with metrics.
  const auto csv = io::read_csv(out + "/summary.csv");
  ASSERT_EQ(csv.size(), 5u) << "header + 3 targets + mean";
  const io::CsvRow& h = csv[0];
  const size_t c_name = column(h, "name"), c_status = column(h, "status"),
               c_dice = column(h, "dice"), c_iou = column(h, "iou"),
               c_prec = column(h, "precision"), c_rec = column(h, "recall"),
               c_auth = column(h, "dice_authors_weighted_mean"), c_npos = column(h, "n_pos");
  EXPECT_EQ(csv[1][c_name], "a_target");
  EXPECT_EQ(csv[1][c_status], "ok");
  EXPECT_EQ(csv[2][c_status], "ok");
  EXPECT_EQ(csv[3][c_name], "c_broken");
  EXPECT_EQ(csv[3][c_status], "failed");
  EXPECT_EQ(csv[1][c_npos], std::to_string(npos));
  double dice_sum = 0;
  for (int r = 1; r <= 2; ++r) {
    for (size_t c : {c_dice, c_iou, c_prec, c_rec}) {
      ASSERT_FALSE(csv[r][c].empty());
      const double v = std::stod(csv[r][c]);
      EXPECT_GE(v, 0.0);
      EXPECT_LE(v, 1.0);
    }
    const double d = std::stod(csv[r][c_dice]), iou = std::stod(csv[r][c_iou]);
    EXPECT_NEAR(iou, d / (2 - d), 1e-9) << "IoU = D / (2 - D) for one image";
    dice_sum += d;
  }
  EXPECT_EQ(csv[4][c_name], "mean");
  EXPECT_NEAR(std::stod(csv[4][c_dice]), dice_sum / 2, 1e-12);
  // Both images have foreground: the authors' weighted mean equals the plain mean here.
  EXPECT_NEAR(std::stod(csv[4][c_auth]), dice_sum / 2, 1e-12);

  // Rerun: finished targets are skipped (files untouched), the broken one fails again.
  const auto mtime = fs::last_write_time(out + "/a_target.png");
  const CliRun second = run_cli(args);
  EXPECT_NE(second.code, 0) << second.output;
  EXPECT_EQ(fs::last_write_time(out + "/a_target.png"), mtime);
  const auto csv2 = io::read_csv(out + "/summary.csv");
  ASSERT_EQ(csv2.size(), 5u);
  EXPECT_EQ(csv2[1][c_status], "skipped");
  EXPECT_EQ(csv2[2][c_status], "skipped");
  EXPECT_EQ(csv2[3][c_status], "failed");
  EXPECT_EQ(csv2[1][c_dice], csv[1][c_dice]) << "metrics recomputed from the existing mask";

  // Without the broken file the batch succeeds; --overwrite redoes everything.
  fs::remove(targets + "/c_broken.png");
  const CliRun third = run_cli(args + " --overwrite");
  EXPECT_EQ(third.code, 0) << third.output;
  const auto csv3 = io::read_csv(out + "/summary.csv");
  ASSERT_EQ(csv3.size(), 4u);
  EXPECT_EQ(csv3[1][c_status], "ok");
  EXPECT_EQ(csv3[1][c_dice], csv[1][c_dice]) << "deterministic";
}

TEST(GbmSegCli, AblationPresetsAndOverrides) {
  if (!have_cli()) GTEST_SKIP() << "build the nephroseg CLI first";
  REQUIRE_SAMPLE_AND_MODELS();
  const std::string root = temp_dir("gbmseg_cli_opts");
  const std::string target = shared_path(kTarget);

  // Table 1 first row at S = 280, mask kept at S.
  const CliRun fwd = run_cli("gbmseg" + models_args() + " --target " + target +
                          " --ablation forward --size 280 --keep-working-size --out " + root + "/fwd");
  ASSERT_EQ(fwd.code, 0) << fwd.output;
  const nlohmann::json a = read_json(root + "/fwd/001_250744_2.prompts.json");
  EXPECT_EQ(a["ablation"], "forward");
  EXPECT_EQ(a["options"]["size"], 280);
  EXPECT_EQ(a["options"]["backward"], false);
  EXPECT_EQ(a["options"]["exclusive"], false);
  EXPECT_EQ(a["options"]["sparse"], false);
  EXPECT_EQ(a["options"]["hard_mode"], "off");
  // Paper radii scale with S: D_ex = 0.25 S.
  EXPECT_EQ(a["options"]["d_ex_px"], 70.0);
  // Forward only: the final positives are the de-duplicated forward matches.
  EXPECT_EQ(a["stages"]["final_pos"], a["stages"]["pts_pos_initial"]);
  EXPECT_EQ(io::read_image_raw(root + "/fwd/001_250744_2.png").size(), cv::Size(280, 280));

  // Paper preset with overrides.
  const CliRun paper = run_cli("gbmseg" + models_args() + " --target " + target +
                            " --preset paper --size 280 --hard h2 --order cpython-set "
                            "--d-ex 100px --d-sp-pos 0.1 --mask-resize bilinear --out " +
                            root + "/paper");
  ASSERT_EQ(paper.code, 0) << paper.output;
  const nlohmann::json b = read_json(root + "/paper/001_250744_2.prompts.json");
  EXPECT_EQ(b["options"]["hard_mode"], "h2");
  EXPECT_EQ(b["options"]["hard_sample"], true);
  EXPECT_EQ(b["options"]["order"], "cpython_set");
  EXPECT_EQ(b["options"]["d_ex_px"], 100.0);
  EXPECT_EQ(b["options"]["d_sp_pos_px"], 28.0);
  EXPECT_EQ(b["options"]["d_sp_neg_px"], 35.0);  // paper: 0.125 S
  EXPECT_EQ(b["output"]["mask_resize"], "bilinear-threshold");
  EXPECT_EQ(io::read_image_raw(root + "/paper/001_250744_2.png").size(), cv::Size(512, 512));

  // Bad input: one clear error, nothing written.
  const CliRun bad = run_cli("gbmseg" + models_args() + " --target " + root + "/missing.png --out " +
                          root + "/bad");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.output.find("missing.png"), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(root + "/bad"));
  const CliRun size = run_cli("gbmseg" + models_args() + " --target " + target + " --size 100 --out " +
                           root + "/size");
  EXPECT_NE(size.code, 0);
  EXPECT_NE(size.output.find("--size"), std::string::npos) << size.output;
  const CliRun kind = run_cli("gbmseg" + models_args() + " --target " + target +
                           " --features no-such-backend --out " + root + "/kind");
  EXPECT_NE(kind.code, 0);
  EXPECT_NE(kind.output.find("no-such-backend"), std::string::npos) << kind.output;
}
