// The GBMSeg batch runner (backends/gbmseg_batch.h): the prompts.json record and the
// summary.csv columns as a contract, and a small weight-free batch (outputs, skip,
// overwrite, failures, progress events) that never runs the demo.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "nephroseg/workloads/demo.h"
#include "nephroseg/workloads/gbmseg.h"
#include "nephroseg/core/error.h"
#include "nephroseg/gbmseg/prompts_json.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/measure/phantom.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using namespace nephroseg;

namespace {

std::set<std::string> keys_of(const nlohmann::json& j) {
  std::set<std::string> k;
  for (auto it = j.begin(); it != j.end(); ++it) k.insert(it.key());
  return k;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// A hand-made result: S = 28 (grid 2), written mask 56 x 42 with a 10 x 5 block.
gbmseg::SegmentResult small_result() {
  gbmseg::SegmentResult r;
  r.image_working = cv::Mat(28, 28, CV_8UC3, cv::Scalar(90, 90, 90));
  r.mask_working = cv::Mat::zeros(28, 28, CV_8UC1);
  r.mask = cv::Mat::zeros(42, 56, CV_8UC1);
  r.mask(cv::Rect(4, 6, 10, 5)).setTo(255);
  r.original_width = 56;
  r.original_height = 42;
  r.points = {{7.f, 7.f}, {21.f, 14.f}};
  r.labels = {1, 0};
  r.prompts.size = 28;
  r.prompts.grid = 2;
  r.prompts.patch_size = 14;
  r.prompts.ape.final_pos = {{7, 7}};
  r.prompts.ape.final_neg = {{21, 14}};
  r.prompts.warnings = {"no hard negatives"};
  r.timings.features = 0.5;
  r.timings.total = 2.0;
  return r;
}

}  // namespace

TEST(GbmSegBatchContract, PromptsRecordFieldsAndValues) {
  gbmseg::SegmentRecordContext c;
  c.target_path = "/data/t.png";
  c.target_name = "t";
  c.reference_image = "ref.png";
  c.reference_mask = "ref_mask.png";
  c.features_name = "features X";
  c.segmenter_name = "segmenter Y";
  c.preset = gbmseg::PromptPreset::kPaper;
  c.ablation = gbmseg::AblationRow::kForwardOnly;
  gbmseg::PromptOptions o = gbmseg::PromptOptions::authors_code();
  o.size = 28;
  o.order = gbmseg::PointOrder::kCPythonSet;
  const nlohmann::json j = gbmseg::segment_record_to_json(c, small_result(), o, gbmseg::PipelineOptions{});

  const std::set<std::string> top{"target",   "reference",         "backends", "preset",   "ablation", "options",
                                  "output",   "segmenter_prompts", "stages",   "warnings", "timings",  "version"};
  EXPECT_EQ(keys_of(j), top);
  EXPECT_EQ(j["target"], nlohmann::json({{"path", "/data/t.png"}, {"name", "t"}, {"width", 56}, {"height", 42}}));
  EXPECT_EQ(j["reference"], nlohmann::json({{"image", "ref.png"}, {"mask", "ref_mask.png"}}));
  EXPECT_EQ(j["backends"], nlohmann::json({{"features", "features X"}, {"segmenter", "segmenter Y"}}));
  EXPECT_EQ(j["preset"], "paper");
  EXPECT_EQ(j["ablation"], "forward");
  EXPECT_EQ(j["options"]["size"], 28);
  EXPECT_EQ(j["options"]["order"], "cpython_set");
  EXPECT_EQ(j["options"]["patch_rule"], "all_nonzero");
  EXPECT_EQ(j["options"]["d_ex_px"], 3.5);  // 0.125 * 28
  EXPECT_EQ(j["output"], nlohmann::json({{"mask", "t.png"},
                                         {"width", 56},
                                         {"height", 42},
                                         {"mask_resize", "nearest"},
                                         {"largest_contour", false},
                                         {"foreground_pixels", 50}}));
  const nlohmann::json& sp = j["segmenter_prompts"];
  EXPECT_EQ(keys_of(sp), (std::set<std::string>{"frame", "points", "labels", "points_output_frame"}));
  EXPECT_EQ(sp["points"], nlohmann::json::parse("[[7.0, 7.0], [21.0, 14.0]]"));
  EXPECT_EQ(sp["labels"], nlohmann::json::parse("[1, 0]"));
  // Scaled to the written mask: x * 56 / 28, y * 42 / 28.
  EXPECT_EQ(sp["points_output_frame"], nlohmann::json::parse("[[14.0, 10.5], [42.0, 21.0]]"));
  EXPECT_EQ(j["stages"]["final_pos"], nlohmann::json::parse("[[7, 7]]"));
  EXPECT_EQ(j["stages"]["final_neg"], nlohmann::json::parse("[[21, 14]]"));
  EXPECT_EQ(j["warnings"], nlohmann::json::parse(R"(["no hard negatives"])"));
  EXPECT_EQ(keys_of(j["timings"]), (std::set<std::string>{"resize_s", "features_s", "prompts_s", "segment_s",
                                                          "postprocess_s", "total_s"}));
  EXPECT_EQ(j["timings"]["features_s"], 0.5);
  EXPECT_EQ(j["timings"]["total_s"], 2.0);
  EXPECT_EQ(j["version"], "nephroseg 0.1.0");

  // No ablation: null; mask kept at S x S: its own label; other resize mode by name.
  c.ablation.reset();
  c.preset = gbmseg::PromptPreset::kAuthorsCode;
  gbmseg::PipelineOptions keep;
  keep.resize_to_original = false;
  const nlohmann::json k = gbmseg::segment_record_to_json(c, small_result(), o, keep);
  EXPECT_TRUE(k["ablation"].is_null());
  EXPECT_EQ(k["preset"], "authors-code");
  EXPECT_EQ(k["output"]["mask_resize"], "none (working size kept)");
  gbmseg::PipelineOptions bilinear;
  bilinear.mask_resize = gbmseg::MaskResize::kBilinearThreshold;
  bilinear.largest_contour = true;
  const nlohmann::json b = gbmseg::segment_record_to_json(c, small_result(), o, bilinear);
  EXPECT_EQ(b["output"]["mask_resize"], "bilinear-threshold");
  EXPECT_EQ(b["output"]["largest_contour"], true);
}

TEST(GbmSegBatchContract, SummaryColumnsAndMeans) {
  const std::string dir = test::temp_dir("gbmseg_summary");
  // Two images with metrics: A predicted exactly (Dice 1), B half right (16 px truth,
  // 16 px prediction, 8 shared: Dice 0.5, IoU 1/3, precision 0.5, recall 0.5).
  cv::Mat truth_a = cv::Mat::zeros(8, 8, CV_8UC1), truth_b = cv::Mat::zeros(8, 8, CV_8UC1);
  truth_a(cv::Rect(0, 0, 4, 4)).setTo(255);
  truth_b(cv::Rect(0, 0, 4, 4)).setTo(255);
  cv::Mat pred_b = cv::Mat::zeros(8, 8, CV_8UC1);
  pred_b(cv::Rect(2, 0, 4, 4)).setTo(255);
  std::vector<workloads::GbmSegTargetRecord> recs(4);
  recs[0].name = "a";
  recs[0].path = "in/a.png";
  recs[0].ground_truth = "gt/a.png";
  recs[0].status = ItemStatus::kOk;
  recs[0].width = 8;
  recs[0].height = 6;
  recs[0].n_pos = 3;
  recs[0].n_neg = 2;
  recs[0].n_warnings = 0;
  recs[0].t_features = 0.25;
  recs[0].t_prompts = 0.5;
  recs[0].t_segment = 1.5;
  recs[0].t_total = 2.5;
  recs[0].metrics = eval::MaskMetrics{};
  recs[0].metrics->dice = recs[0].metrics->iou = recs[0].metrics->precision = recs[0].metrics->recall = 1.0;
  recs[0].truth_mask = truth_a;
  recs[0].compared_mask = truth_a.clone();
  recs[1].name = "b";
  recs[1].path = "in/b.png";
  recs[1].ground_truth = "gt/b.png";
  recs[1].status = ItemStatus::kSkipped;
  recs[1].message = "outputs exist (use --overwrite to redo)";
  recs[1].width = 8;
  recs[1].height = 8;
  recs[1].metrics = eval::MaskMetrics{};
  recs[1].metrics->dice = 0.5;
  recs[1].metrics->iou = 1.0 / 3.0;
  recs[1].metrics->precision = 0.5;
  recs[1].metrics->recall = 0.5;
  recs[1].truth_mask = truth_b;
  recs[1].compared_mask = pred_b;
  recs[2].name = "c";
  recs[2].path = "in/c.png";
  recs[2].status = ItemStatus::kFailed;
  recs[2].message = "not an image";
  recs[3].name = "d";
  recs[3].path = "in/d.png";
  recs[3].status = ItemStatus::kOk;  // no ground truth for this one
  recs[3].width = 8;
  recs[3].height = 8;

  const std::string path = dir + "/summary.csv";
  const auto means = workloads::write_gbmseg_summary(path, recs, /*with_ground_truth=*/true);
  const auto csv = io::read_csv(path);
  const io::CsvRow header{"name",       "target",    "status",    "message",      "width", "height",
                          "mask",       "n_pos",     "n_neg",     "n_warnings",   "features_s",
                          "prompts_s",  "segment_s", "total_s",   "ground_truth", "dice",
                          "iou",        "precision", "recall",    "dice_authors_weighted_mean",
                          "miou_authors"};
  ASSERT_EQ(csv.size(), 6u) << "header + 4 targets + mean";
  EXPECT_EQ(csv[0], header);
  for (const auto& row : csv) ASSERT_EQ(row.size(), header.size());
  const auto num = [](const std::string& s) { return std::stod(s); };
  // a: every column.
  EXPECT_EQ(csv[1][0], "a");
  EXPECT_EQ(csv[1][1], "in/a.png");
  EXPECT_EQ(csv[1][2], "ok");
  EXPECT_EQ(csv[1][3], "");
  EXPECT_EQ(csv[1][4], "8");
  EXPECT_EQ(csv[1][5], "6");
  EXPECT_EQ(csv[1][6], "a.png");
  EXPECT_EQ(csv[1][7], "3");
  EXPECT_EQ(csv[1][8], "2");
  EXPECT_EQ(csv[1][9], "0");
  EXPECT_DOUBLE_EQ(num(csv[1][10]), 0.25);
  EXPECT_DOUBLE_EQ(num(csv[1][11]), 0.5);
  EXPECT_DOUBLE_EQ(num(csv[1][12]), 1.5);
  EXPECT_DOUBLE_EQ(num(csv[1][13]), 2.5);
  EXPECT_EQ(csv[1][14], "gt/a.png");
  for (int c = 15; c <= 18; ++c) EXPECT_DOUBLE_EQ(num(csv[1][c]), 1.0) << header[c];
  EXPECT_EQ(csv[1][19], "");
  EXPECT_EQ(csv[1][20], "");
  // b (skipped): unknown counts and times are empty, its metrics are there.
  EXPECT_EQ(csv[2][2], "skipped");
  EXPECT_EQ(csv[2][3], "outputs exist (use --overwrite to redo)");
  EXPECT_EQ(csv[2][6], "b.png");
  for (int c = 7; c <= 13; ++c) EXPECT_EQ(csv[2][c], "") << header[c];
  EXPECT_DOUBLE_EQ(num(csv[2][15]), 0.5);
  EXPECT_NEAR(num(csv[2][16]), 1.0 / 3.0, 1e-9);
  // c (failed): no mask, no size.
  EXPECT_EQ(csv[3][2], "failed");
  EXPECT_EQ(csv[3][3], "not an image");
  EXPECT_EQ(csv[3][4], "");
  EXPECT_EQ(csv[3][6], "");
  EXPECT_EQ(csv[3][14], "");
  EXPECT_EQ(csv[3][15], "");
  // d: no ground truth, no metrics.
  EXPECT_EQ(csv[4][14], "");
  EXPECT_EQ(csv[4][15], "");
  // mean: textbook means over a and b; the authors' weighted mean (both images have
  // foreground, so each enters twice: (1 + 1 + 0.5 + 0.5) / 4) and mIoU = D / (2 - D).
  const io::CsvRow& m = csv[5];
  EXPECT_EQ(m[0], "mean");
  EXPECT_EQ(m[2], "mean");
  EXPECT_EQ(m[3].rfind("over 2 image(s) with ground truth", 0), 0u) << m[3];
  for (int c : {1, 4, 5, 6, 7, 14}) EXPECT_EQ(m[c], "") << header[c];
  EXPECT_DOUBLE_EQ(num(m[15]), 0.75);
  EXPECT_NEAR(num(m[16]), 2.0 / 3.0, 1e-9);
  EXPECT_DOUBLE_EQ(num(m[17]), 0.75);
  EXPECT_DOUBLE_EQ(num(m[18]), 0.75);
  EXPECT_DOUBLE_EQ(num(m[19]), 0.75);
  EXPECT_NEAR(num(m[20]), 0.6, 1e-9);
  ASSERT_TRUE(means.has_value());
  EXPECT_EQ(means->n, 2);
  EXPECT_DOUBLE_EQ(means->dice, 0.75);
  EXPECT_NEAR(means->miou_authors, 0.6, 1e-9);

  // Without ground truth: the first 14 columns only, no mean row.
  const auto none = workloads::write_gbmseg_summary(path, recs, /*with_ground_truth=*/false);
  EXPECT_FALSE(none.has_value());
  const auto plain = io::read_csv(path);
  ASSERT_EQ(plain.size(), 5u);
  EXPECT_EQ(plain[0], io::CsvRow(header.begin(), header.begin() + 14));
  EXPECT_EQ(plain[4][0], "d");
}

namespace {

// Phantom files: reference, `n` targets (+ their truth) and a corrupt target.
struct BatchFiles {
  std::string root, ref_image, ref_mask, targets, truth, out;
};

BatchFiles write_phantoms(const std::string& tag, int n, bool broken) {
  BatchFiles f;
  f.root = test::temp_dir(tag);
  f.ref_image = f.root + "/ref.png";
  f.ref_mask = f.root + "/ref_mask.png";
  f.targets = f.root + "/targets";
  f.truth = f.root + "/truth";
  f.out = f.root + "/out";
  fs::create_directories(f.targets);
  fs::create_directories(f.truth);
  measure::PhantomOptions po = workloads::demo_phantom_options();  // 512 x 512, 32 px membranes
  po.seed = 11;
  const measure::Phantom ref = measure::generate_phantom(po);
  io::write_png(f.ref_image, ref.image);
  io::write_mask_png(f.ref_mask, ref.mask);
  for (int i = 0; i < n; ++i) {
    po.seed = 12 + static_cast<uint64_t>(i);
    const measure::Phantom t = measure::generate_phantom(po);
    const std::string name = "t" + std::to_string(i) + ".png";
    io::write_png(f.targets + "/" + name, t.image);
    io::write_mask_png(f.truth + "/" + name, t.mask);
  }
  if (broken) std::ofstream(f.targets + "/z_broken.png") << "this is not a PNG file";
  return f;
}

workloads::GbmSegBatchOptions classical_options(const BatchFiles& f) {
  workloads::GbmSegBatchOptions o;
  o.reference_image = f.ref_image;
  o.reference_mask = f.ref_mask;
  o.targets = f.targets;
  o.ground_truth = f.truth;
  o.out_dir = f.out;
  o.features.kind = "classical";
  o.segmenter.kind = "classical";
  o.prompts = gbmseg::PromptOptions::authors_code();
  return o;
}

}  // namespace

// The weight-free kinds reach the factory through the runner alone: this test never
// registers them and never runs the demo (each test runs in its own process under ctest).
TEST(GbmSegBatch, ClassicalKindsWithoutTheDemo) {
  const BatchFiles f = write_phantoms("gbmseg_batch_classical", 1, false);
  const workloads::GbmSegBatchResult r = workloads::run_gbmseg_batch(classical_options(f));
  ASSERT_EQ(r.targets.size(), 1u);
  EXPECT_EQ(r.targets[0].status, ItemStatus::kOk) << r.targets[0].message;
  EXPECT_NE(r.features_name.find("classical"), std::string::npos) << r.features_name;
  EXPECT_NE(r.segmenter_name.find("classical"), std::string::npos) << r.segmenter_name;
  const auto fk = gbmseg::feature_extractor_kinds(), sk = gbmseg::point_segmenter_kinds();
  EXPECT_NE(std::find(fk.begin(), fk.end(), "classical"), fk.end());
  EXPECT_NE(std::find(sk.begin(), sk.end(), "classical"), sk.end());
}

TEST(GbmSegBatch, OutputsSkipOverwriteAndFailures) {
  const BatchFiles f = write_phantoms("gbmseg_batch_run", 2, true);
  workloads::GbmSegBatchOptions o = classical_options(f);
  std::vector<std::string> events;
  const auto record = [&](const workloads::Event& ev) {
    using Kind = workloads::Event::Kind;
    const auto* d = std::any_cast<const workloads::GbmSegEventDetail*>(&ev.detail);
    switch (ev.kind) {
      case Kind::kModelsReady: events.push_back("ready"); break;
      case Kind::kItemStarted: events.push_back("start " + (*d)->record->name); break;
      case Kind::kItemFinished:
        EXPECT_EQ(ev.item, (*d)->record->name);
        EXPECT_EQ(ev.status, (*d)->record->status);
        events.push_back("end " + (*d)->record->name + " " + item_status_names().name((*d)->record->status) +
                         ((*d)->result ? " +result" : ""));
        break;
      case Kind::kWarning: events.push_back("warning"); break;
      case Kind::kError: events.push_back("error"); break;
      default: break;  // kInfo: the closing summary lines
    }
  };
  const workloads::GbmSegBatchResult first = workloads::run_gbmseg_batch(o, record);
  EXPECT_EQ(first.segmented, 2);
  EXPECT_EQ(first.failed, 1);
  EXPECT_EQ(first.skipped, 0);
  // z_broken has no truth file: one warning, before the models are loaded.
  EXPECT_EQ(events, (std::vector<std::string>{"warning", "ready", "start t0", "end t0 ok +result", "start t1",
                                              "end t1 ok +result", "start z_broken", "end z_broken failed",
                                              "error",  // the target's error line
                                              "error"}));  // "1 of 3 target(s) failed"
  ASSERT_EQ(first.warnings.size(), 1u);
  EXPECT_NE(first.warnings[0].find("z_broken"), std::string::npos);
  for (const char* name : {"t0", "t1"}) {
    for (const char* suffix : {".png", ".prompts.json", ".overlay.png"})
      EXPECT_TRUE(fs::is_regular_file(f.out + "/" + name + suffix)) << name << suffix;
    EXPECT_EQ(io::read_image_raw(f.out + "/" + std::string(name) + ".png").size(), cv::Size(512, 512));
  }
  EXPECT_FALSE(fs::exists(f.out + "/z_broken.png"));
  ASSERT_TRUE(first.targets[0].metrics.has_value());
  EXPECT_GT(first.targets[0].metrics->dice, 0.5);
  ASSERT_TRUE(first.means.has_value());
  EXPECT_EQ(first.means->n, 2);
  EXPECT_EQ(first.targets[2].status, ItemStatus::kFailed);
  EXPECT_FALSE(first.targets[2].message.empty());

  const nlohmann::json run = read_json(f.out + "/run.json");
  EXPECT_EQ(run["targets"], 3);
  EXPECT_EQ(run["segmented"], 2);
  EXPECT_EQ(run["failed"], 1);
  EXPECT_EQ(run["preset"], "authors-code");
  EXPECT_TRUE(run["ablation"].is_null());
  EXPECT_EQ(run["options"]["size"], 560);
  EXPECT_NE(run["backends"]["features"].get<std::string>().find("classical"), std::string::npos);
  const nlohmann::json rec = read_json(f.out + "/t0.prompts.json");
  EXPECT_EQ(rec["target"]["name"], "t0");
  EXPECT_EQ(rec["stages"]["final_pos"].size(), static_cast<size_t>(first.targets[0].n_pos));

  // Second run: the finished targets are skipped (files untouched, rows re-read), the
  // broken one is tried again.
  const auto mtime = fs::last_write_time(f.out + "/t0.png");
  events.clear();
  const workloads::GbmSegBatchResult second = workloads::run_gbmseg_batch(o, record);
  EXPECT_EQ(second.skipped, 2);
  EXPECT_EQ(second.failed, 1);
  EXPECT_EQ(fs::last_write_time(f.out + "/t0.png"), mtime);
  EXPECT_EQ(second.targets[0].status, ItemStatus::kSkipped);
  EXPECT_EQ(second.targets[0].n_pos, first.targets[0].n_pos);
  ASSERT_TRUE(second.targets[0].metrics.has_value());
  EXPECT_EQ(second.targets[0].metrics->dice, first.targets[0].metrics->dice);
  EXPECT_EQ(events, (std::vector<std::string>{"warning", "ready", "end t0 skipped", "end t1 skipped",
                                              "start z_broken", "end z_broken failed",
                                              "error",  // the target's error line
                                              "error"}));  // "1 of 3 target(s) failed"

  // Nothing left to do: no models loaded; --overwrite redoes everything, identically.
  fs::remove(f.targets + "/z_broken.png");
  events.clear();
  const workloads::GbmSegBatchResult third = workloads::run_gbmseg_batch(o, record);
  EXPECT_EQ(third.skipped, 2);
  EXPECT_TRUE(third.features_name.empty());
  EXPECT_EQ(events, (std::vector<std::string>{"end t0 skipped", "end t1 skipped"}));
  o.overwrite = true;
  const workloads::GbmSegBatchResult fourth = workloads::run_gbmseg_batch(o);
  EXPECT_EQ(fourth.segmented, 2);
  ASSERT_TRUE(fourth.targets[0].metrics.has_value());
  EXPECT_EQ(fourth.targets[0].metrics->dice, first.targets[0].metrics->dice);
  EXPECT_EQ(io::read_csv(f.out + "/summary.csv").size(), 4u) << "header + 2 targets + mean";
}

TEST(GbmSegBatch, BadInputsWriteNothing) {
  const BatchFiles f = write_phantoms("gbmseg_batch_bad", 1, false);
  const auto fails_naming = [&](workloads::GbmSegBatchOptions o, const std::string& word) {
    try {
      workloads::run_gbmseg_batch(o);
      ADD_FAILURE() << "no error (expected one naming '" << word << "')";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(word), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(f.out)) << "nothing is written for bad inputs";
  };
  workloads::GbmSegBatchOptions o = classical_options(f);
  o.targets = f.root + "/missing.png";
  fails_naming(o, "missing.png");
  o = classical_options(f);
  o.reference_mask = f.root + "/no_mask.png";
  fails_naming(o, "no_mask.png");
  o = classical_options(f);
  o.features.kind = "no-such-backend";
  fails_naming(o, "no-such-backend");
  o = classical_options(f);
  o.segmenter = {"sam", f.root + "/sam_missing.pth", "vit_b", "", false, 0};
  fails_naming(o, "sam_missing.pth");
  o = classical_options(f);
  o.prompts.size = 100;
  fails_naming(o, "100");
}
