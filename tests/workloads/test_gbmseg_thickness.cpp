// GBMSeg runs that measure (gbmseg --measure) and pool several references (few-shot):
// calibrated DM4 / TIFF phantoms end to end with the weight-free backends, the
// summary, record and report files, sharding, and the pipeline's reference pool.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "nephroseg/workloads/demo.h"
#include "nephroseg/workloads/gbmseg.h"
#include "nephroseg/workloads/measure.h"
#include "nephroseg/core/error.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/measure/phantom.h"
#include "support/calibrated_files.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using namespace nephroseg;

namespace {

constexpr double kNmPerPixel = 8.0;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

using test::error_of;

measure::Phantom phantom(uint64_t seed) {
  measure::PhantomOptions po = workloads::demo_phantom_options();  // 512 x 512, 32 px membranes
  po.seed = seed;
  po.nm_per_pixel = kNmPerPixel;
  // No foot processes or background texture: the weight-free segmenter's masks then
  // follow the membrane closely in both the 8-bit and the windowed 16-bit image, so
  // the check is on the calibration chain, not on the stand-in segmenter.
  po.texture = false;
  return measure::generate_phantom(po);
}

struct Files {
  std::string root, ref_image, ref_mask, ref_dm, targets, out;
  double true_nm = 0;
};

// Reference (PNG, uncalibrated; also as ref.dm4, the same camera as t_dm) and two
// calibrated targets: t_dm.dm4 (uint16, scale in µm) and t_tif.tif (8-bit, resolution in
// pixels per centimetre).
Files calibrated_files(const std::string& tag) {
  Files f;
  f.root = test::temp_dir(tag);
  f.ref_image = f.root + "/ref.png";
  f.ref_mask = f.root + "/ref_mask.png";
  f.targets = f.root + "/targets";
  f.out = f.root + "/out";
  fs::create_directories(f.targets);
  const measure::Phantom ref = phantom(21);
  io::write_png(f.ref_image, ref.image);
  io::write_mask_png(f.ref_mask, ref.mask);
  f.ref_dm = f.root + "/ref.dm4";
  cv::Mat ref16;
  ref.image.convertTo(ref16, CV_16U, 200.0, 1000.0);
  write_bytes(f.ref_dm, test::dm_image_uint16(ref16, kNmPerPixel / 1000.0, u"\u00B5m"));
  const measure::Phantom a = phantom(22), b = phantom(23);
  f.true_nm = a.true_thickness_nm();
  cv::Mat a16;
  a.image.convertTo(a16, CV_16U, 200.0, 1000.0);  // a 16-bit camera image
  write_bytes(f.targets + "/t_dm.dm4", test::dm_image_uint16(a16, kNmPerPixel / 1000.0, u"\u00B5m"));
  write_bytes(f.targets + "/t_tif.tif", test::tiff_grey8(b.image, 1e7 / kNmPerPixel, /*cm=*/3));
  return f;
}

workloads::GbmSegBatchOptions classical(const Files& f) {
  workloads::GbmSegBatchOptions o;
  o.reference_image = f.ref_image;
  o.reference_mask = f.ref_mask;
  o.targets = f.targets;
  o.out_dir = f.out;
  o.features.kind = "classical";
  o.segmenter.kind = "classical";
  return o;
}

std::map<std::string, std::string> row_of(const std::string& csv, const std::string& name) {
  const std::vector<io::CsvRow> rows = io::read_csv(csv);
  std::map<std::string, std::string> out;
  for (size_t i = 1; i < rows.size(); ++i) {
    if (rows[i][0] != name) continue;
    for (size_t c = 0; c < rows[0].size(); ++c) out[rows[0][c]] = rows[i][c];
  }
  return out;
}

// summary.csv with the timing columns (*_s) blanked.
std::vector<io::CsvRow> without_timings(const std::string& csv) {
  std::vector<io::CsvRow> rows = io::read_csv(csv);
  for (size_t c = 0; c < rows[0].size(); ++c) {
    const std::string& h = rows[0][c];
    if (h.size() > 2 && h.compare(h.size() - 2, 2, "_s") == 0)
      for (size_t r = 1; r < rows.size(); ++r) rows[r][c].clear();
  }
  return rows;
}

}  // namespace

// The end-to-end check: no --nm-per-pixel, the pixel size from each file, the
// phantom's true thickness within 5 %.
TEST(GbmSegMeasure, CalibratedDm4AndTiffPhantomsGiveTheTrueThickness) {
  const Files f = calibrated_files("gbmseg_measure_e2e");
  workloads::GbmSegBatchOptions o = classical(f);
  o.measure.mode = workloads::GbmSegMeasureOptions::Mode::kOn;
  // Each target with a reference from the same kind of camera file: the DM micrograph
  // with a DM reference (both through the 16-bit window), the 8-bit TIFF with the PNG.
  o.items = {{"t_tif", f.targets + "/t_tif.tif", ""}};
  const workloads::GbmSegBatchResult tif = workloads::run_gbmseg_batch(o);
  o.reference_image = f.ref_dm;
  o.items = {{"t_dm", f.targets + "/t_dm.dm4", ""}};
  o.out_dir = f.root + "/out_dm";
  const workloads::GbmSegBatchResult dm = workloads::run_gbmseg_batch(o);
  const std::map<std::string, std::string> sources{{"t_dm", "dm"}, {"t_tif", "tiff-resolution"}};
  for (const workloads::GbmSegBatchResult* run : {&tif, &dm}) {
    const workloads::GbmSegBatchResult& r = *run;
    const std::string out = run == &tif ? f.out : o.out_dir;
    ASSERT_EQ(r.segmented, 1);
    EXPECT_TRUE(r.measured);
    for (const auto& t : r.targets) {
      ASSERT_TRUE(t.thickness) << t.name;
      const workloads::GbmSegThickness& th = *t.thickness;
      EXPECT_EQ(th.note, "") << t.name;
      EXPECT_NEAR(th.nm_per_pixel, kNmPerPixel, 1e-3) << t.name;
      EXPECT_EQ(th.calibration_source, sources.at(t.name));
      // Phantom sections are perpendicular to the membrane: the raw 2-D intercepts and the
      // medial-axis widths are the thickness (measure/thickness.h).
      EXPECT_NEAR(th.direct.median, f.true_nm, 0.05 * f.true_nm) << t.name;
      EXPECT_NEAR(th.oi.harmonic_mean, f.true_nm, 0.05 * f.true_nm) << t.name;
      EXPECT_NEAR(th.oi_harmonic_3d_nm, th.oi.harmonic_mean * 8.0 / (3.0 * M_PI), 1e-6 * f.true_nm);
      EXPECT_GT(th.oi.n, 20) << t.name;
      EXPECT_FALSE(th.verdict.empty());

      // summary.csv, the record and the picture.
      const auto row = row_of(r.summary_csv, t.name);
      EXPECT_EQ(row.at("calibration_source"), sources.at(t.name));
      EXPECT_NEAR(std::stod(row.at("thickness_direct_median_nm")), th.direct.median, 1e-6 * f.true_nm);
      EXPECT_EQ(std::stoi(row.at("n_intercepts")), th.oi.n);
      EXPECT_EQ(row.at("thickness_class"), th.verdict);
      const nlohmann::json rec = read_json(out + "/" + t.name + ".prompts.json");
      EXPECT_EQ(rec["thickness"]["class"], th.verdict);
      EXPECT_EQ(rec["thickness"]["map"], t.name + ".thickness.png");
      EXPECT_EQ(rec["input"]["format"], t.name == "t_dm" ? "dm4" : "tiff");
      EXPECT_NE(
          rec["input"]["to_8bit"].get<std::string>().find(t.name == "t_dm" ? "percentile" : "unchanged"),
          std::string::npos);
      const cv::Mat pic = io::read_image_rgb(out + "/" + t.name + ".thickness.png");
      EXPECT_GT(pic.cols, 2 * 512);  // overlay | map | colour bar
      EXPECT_GE(pic.rows, 512);
    }
    ASSERT_FALSE(r.report_html.empty());
    std::ifstream in(r.report_html);
    const std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(html.find("alt=\"box plot\""), std::string::npos);
    EXPECT_NE(html.find("alt=\"" + r.targets[0].name + "\""), std::string::npos);
  }

  // A rerun skips and re-reads the same numbers from the record.
  const auto first = without_timings(dm.summary_csv);
  const workloads::GbmSegBatchResult again = workloads::run_gbmseg_batch(o);
  EXPECT_EQ(again.skipped, 1);
  EXPECT_EQ(again.segmented, 0);
  std::vector<io::CsvRow> second = without_timings(again.summary_csv);
  for (size_t i = 1; i < second.size(); ++i)
    second[i][2] = first[i][2], second[i][3] = first[i][3];  // status
  EXPECT_EQ(second, first);
}

TEST(GbmSegMeasure, ShardsMergedEqualOneProcess) {
  const Files f = calibrated_files("gbmseg_measure_shards");
  workloads::GbmSegBatchOptions o = classical(f);
  const workloads::GbmSegBatchResult whole = workloads::run_gbmseg_batch(o);  // auto: both files calibrated
  ASSERT_TRUE(whole.measured);
  o.out_dir = f.root + "/sharded";
  for (int k : {2, 1}) {
    o.shard = Shard{k, 2};
    const workloads::GbmSegBatchResult part = workloads::run_gbmseg_batch(o);
    EXPECT_TRUE(part.report_html.empty());  // written by the merge
  }
  const workloads::GbmSegMergeResult merged = workloads::merge_gbmseg_shards(o.out_dir);
  EXPECT_EQ(without_timings(merged.summary_csv), without_timings(whole.summary_csv));
  EXPECT_TRUE(fs::is_regular_file(merged.report_html));
}

TEST(GbmSegMeasure, PixelSizeRules) {
  const Files f = calibrated_files("gbmseg_measure_rules");
  // A PNG target has no calibration: --measure names it before anything is written.
  const measure::Phantom p = phantom(24);
  io::write_png(f.targets + "/u_png.png", p.image);
  workloads::GbmSegBatchOptions o = classical(f);
  o.measure.mode = workloads::GbmSegMeasureOptions::Mode::kOn;
  const std::string msg = error_of([&] { workloads::run_gbmseg_batch(o); });
  EXPECT_NE(msg.find("no pixel size for '" + f.targets + "/u_png.png'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--nm-per-pixel"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(f.out));

  // auto: the calibrated targets are measured, the PNG gets a note.
  o.measure.mode = workloads::GbmSegMeasureOptions::Mode::kAuto;
  workloads::GbmSegBatchResult r = workloads::run_gbmseg_batch(o);
  ASSERT_EQ(r.targets.size(), 3u);
  EXPECT_TRUE(r.measured);
  EXPECT_TRUE(r.targets[0].thickness && r.targets[1].thickness);
  EXPECT_FALSE(r.targets[2].thickness);
  EXPECT_NE(row_of(r.summary_csv, "u_png").at("thickness_note").find("no pixel size"), std::string::npos);

  // An explicit value overrides the files (with a warning for the disagreement).
  o.measure.nm_per_pixel = "4";
  o.overwrite = true;
  r = workloads::run_gbmseg_batch(o);
  for (const auto& t : r.targets) {
    ASSERT_TRUE(t.thickness) << t.name;
    EXPECT_EQ(t.thickness->calibration_source, "option");
    EXPECT_EQ(t.thickness->nm_per_pixel, 4.0);
  }
  bool warned = false;
  for (const auto& w : r.warnings)
    warned = warned || w.find("disagrees with the calibration of") != std::string::npos;
  EXPECT_TRUE(warned);
  o.measure.nm_per_pixel = "nan";
  EXPECT_NE(
      error_of([&] { workloads::run_gbmseg_batch(o); }).find("--nm-per-pixel must be 'auto' or a positive"),
      std::string::npos);

  // Off, or uncalibrated files under auto: no thickness columns at all (today's summary).
  o.measure.nm_per_pixel = "auto";
  o.measure.mode = workloads::GbmSegMeasureOptions::Mode::kOff;
  r = workloads::run_gbmseg_batch(o);
  EXPECT_FALSE(r.measured);
  EXPECT_TRUE(r.report_html.empty());
  EXPECT_EQ(io::read_csv(r.summary_csv)[0].size(), 14u);
}

TEST(GbmSegMeasure, BadCalibratedInputs) {
  const Files f = calibrated_files("gbmseg_measure_bad");
  workloads::GbmSegBatchOptions o = classical(f);
  o.measure.mode = workloads::GbmSegMeasureOptions::Mode::kOn;
  // A truncated DM file: one clear error naming it, before any output.
  std::ifstream in(f.targets + "/t_dm.dm4", std::ios::binary);
  const std::string dm((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_bytes(f.targets + "/t_dm.dm4", dm.substr(0, dm.size() / 3));
  std::string msg = error_of([&] { workloads::run_gbmseg_batch(o); });
  EXPECT_NE(msg.find("t_dm.dm4"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(f.out));
  // Absurd dimensions (2^31 x 2^31): refused from the header, nothing allocated.
  cv::Mat tiny(2, 2, CV_16UC1, cv::Scalar(7));
  const std::string huge = test::dm_image_uint16(tiny, 0.008, u"\u00B5m", true, 1u << 31, 1u << 31);
  write_bytes(f.targets + "/t_dm.dm4", huge);
  const auto t0 = std::chrono::steady_clock::now();
  msg = error_of([&] { workloads::run_gbmseg_batch(o); });
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
  EXPECT_NE(msg.find("t_dm.dm4"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(f.out));
}

// ---- few-shot references ---------------------------------------------------------------

TEST(GbmSegFewShot, PoolingOneReferenceTwiceChangesNothing) {
  const measure::Phantom ref = phantom(31), other = phantom(32), target = phantom(33);
  auto make = [] {
    gbmseg::BackendSpec fs{"classical", "", "", "", false, 0}, ss{"classical", "", "", "", false, 0};
    return gbmseg::GbmSegPipeline(gbmseg::make_feature_extractor(fs), gbmseg::make_point_segmenter(ss),
                                  gbmseg::PromptOptions::authors_code());
  };
  cv::Mat ref_rgb, other_rgb, target_rgb;
  cv::cvtColor(ref.image, ref_rgb, cv::COLOR_GRAY2RGB);
  cv::cvtColor(other.image, other_rgb, cv::COLOR_GRAY2RGB);
  cv::cvtColor(target.image, target_rgb, cv::COLOR_GRAY2RGB);
  gbmseg::GbmSegPipeline one = make(), twice = make(), two = make();
  one.set_reference(ref_rgb, ref.mask);
  twice.set_reference(ref_rgb, ref.mask);
  twice.add_reference(ref_rgb, ref.mask);
  const int64_t n = 40 * 40;  // G*G at S = 560
  ASSERT_EQ(twice.reference_count(), 2);
  ASSERT_EQ(twice.reference_features().size(0), 2 * n);
  ASSERT_EQ(twice.reference_patch_sets().fg.size(), 2 * one.reference_patch_sets().fg.size());
  EXPECT_EQ(twice.reference_patch_sets().fg.back(), one.reference_patch_sets().fg.back() + n);
  // Duplicated reference patches tie, ties go to the lowest index (the first copy, in
  // the same set): the same prompts and mask.
  const gbmseg::SegmentResult a = one.segment(target_rgb), b = twice.segment(target_rgb);
  EXPECT_EQ(a.prompts.ape.final_pos, b.prompts.ape.final_pos);
  EXPECT_EQ(a.prompts.ape.final_neg, b.prompts.ape.final_neg);
  EXPECT_EQ(cv::countNonZero(a.mask != b.mask), 0);

  // Two different references: the sets are the union (the second offset by G*G) and
  // the features are stacked in order.
  two.set_reference(ref_rgb, ref.mask);
  two.add_reference(other_rgb, other.mask);
  gbmseg::GbmSegPipeline second = make();
  second.set_reference(other_rgb, other.mask);
  gbmseg::PatchIndices expected = one.reference_patch_sets().fg;
  for (int64_t k : second.reference_patch_sets().fg) expected.push_back(k + n);
  EXPECT_EQ(two.reference_patch_sets().fg, expected);
  EXPECT_TRUE(at::equal(two.reference_features().slice(0, n, 2 * n), second.reference_features()));
  EXPECT_NE(error_of([&] { make().add_reference(ref_rgb, ref.mask); }).find("needs set_reference() first"),
            std::string::npos);
}

TEST(GbmSegFewShot, BatchPoolsReferenceFoldersAndRecordsThem) {
  const Files f = calibrated_files("gbmseg_fewshot_batch");
  fs::create_directories(f.root + "/refs/images");
  fs::create_directories(f.root + "/refs/masks");
  for (uint64_t seed : {41, 42, 43}) {
    const measure::Phantom p = phantom(seed);
    io::write_png(f.root + "/refs/images/r" + std::to_string(seed) + ".png", p.image);
    io::write_mask_png(f.root + "/refs/masks/r" + std::to_string(seed) + ".png", p.mask);
  }
  workloads::GbmSegBatchOptions o = classical(f);
  o.references = {{f.root + "/refs/images", f.root + "/refs/masks"}, {f.ref_image, f.ref_mask}};
  const std::vector<workloads::ReferenceFiles> refs = workloads::list_references(o);
  ASSERT_EQ(refs.size(), 4u);
  EXPECT_EQ(fs::path(refs[0].image).filename(), "r41.png");
  EXPECT_EQ(fs::path(refs[0].mask).parent_path().filename(), "masks");
  const workloads::GbmSegBatchResult r = workloads::run_gbmseg_batch(o);
  EXPECT_EQ(r.references, 4);
  EXPECT_EQ(r.segmented, 2);
  const nlohmann::json run = read_json(r.run_json);
  ASSERT_EQ(run["references"].size(), 4u);
  EXPECT_EQ(read_json(f.out + "/t_dm.prompts.json")["references"].size(), 4u);

  // A reference image without its mask, or a file paired with a folder: named errors.
  fs::remove(f.root + "/refs/masks/r42.png");
  EXPECT_NE(error_of([&] { workloads::list_references(o); }).find("r42"), std::string::npos);
  o.references = {{f.ref_image, f.root + "/refs/masks"}};
  EXPECT_NE(error_of([&] { workloads::list_references(o); }).find("must both be files or both be folders"),
            std::string::npos);
}

// The workbench's correction (workloads::revise_gbmseg_target): the original kept as
// .auto.png, the new mask written, measured again as `nephroseg measure` measures it,
// and the summary row, the record, the picture and the report rewritten.
TEST(GbmSegRevise, ACorrectedMaskIsMeasuredAgainAsMeasureDoes) {
  const Files f = calibrated_files("gbmseg_revise");
  workloads::GbmSegBatchOptions o = classical(f);
  o.measure.mode = workloads::GbmSegMeasureOptions::Mode::kOn;
  o.items = {{"t_tif", f.targets + "/t_tif.tif", ""}};
  const workloads::GbmSegBatchResult run = workloads::run_gbmseg_batch(o);
  ASSERT_EQ(run.segmented, 1);
  const std::string mask_path = f.out + "/t_tif.png";
  const cv::Mat original = io::read_mask(mask_path);

  // The correction: the phantom's own mask, thinned by one erosion (another thickness).
  cv::Mat corrected;
  cv::erode(phantom(23).mask, corrected, cv::Mat());
  ASSERT_NE(cv::countNonZero(corrected != (original != 0)), 0);
  const workloads::GbmSegTargetRecord rec = workloads::revise_gbmseg_target(f.out, "t_tif", corrected);

  // The files: the original kept once, the correction written.
  EXPECT_EQ(cv::countNonZero(io::read_mask(f.out + "/t_tif.auto.png") != original), 0);
  EXPECT_EQ(cv::countNonZero(io::read_mask(mask_path) != (corrected != 0) * 255), 0);
  const nlohmann::json record = read_json(f.out + "/t_tif.prompts.json");
  EXPECT_EQ(record["edited"], true);

  // `nephroseg measure` on the saved mask with the target image's calibration.
  workloads::MeasureBatchOptions mo;
  mo.mask = mask_path;
  mo.image = f.targets + "/t_tif.tif";
  mo.range = o.measure.range;
  mo.out_dir = f.root + "/measured";
  workloads::run_measure_batch(mo);
  const nlohmann::json measured = read_json(mo.out_dir + "/summary.json");
  const nlohmann::json& item = measured["images"][0];
  ASSERT_TRUE(rec.thickness);
  EXPECT_DOUBLE_EQ(rec.thickness->oi_harmonic_3d_nm, item["oi_stereological_harmonic_nm"].get<double>());
  EXPECT_DOUBLE_EQ(rec.thickness->direct.mean, item["direct_mean_nm"].get<double>());
  EXPECT_EQ(rec.thickness->verdict, item["class"].get<std::string>());
  EXPECT_NEAR(record["thickness"]["oi_harmonic_3d_nm"].get<double>(), rec.thickness->oi_harmonic_3d_nm, 1e-9);
  // The eroded mask is thinner than what the run measured first.
  ASSERT_TRUE(run.targets[0].thickness);
  EXPECT_LT(rec.thickness->direct.median, run.targets[0].thickness->direct.median);

  // summary.csv's row says the same; the report was written again.
  const auto row = row_of(f.out + "/summary.csv", "t_tif");
  EXPECT_NEAR(std::stod(row.at("thickness_oi_harmonic_3d_nm")), rec.thickness->oi_harmonic_3d_nm, 1e-6);
  EXPECT_TRUE(fs::exists(f.out + "/report.html"));
  EXPECT_TRUE(fs::exists(f.out + "/t_tif.thickness.png"));

  // A second correction keeps the first original.
  workloads::revise_gbmseg_target(f.out, "t_tif", phantom(23).mask);
  EXPECT_EQ(cv::countNonZero(io::read_mask(f.out + "/t_tif.auto.png") != original), 0);

  // Bad requests: an unknown target, a mask of another size.
  EXPECT_NE(error_of([&] { workloads::revise_gbmseg_target(f.out, "nope", corrected); }).find("no target 'nope'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { workloads::revise_gbmseg_target(f.out, "t_tif", cv::Mat::zeros(10, 10, CV_8U)); })
                .find("10x10"),
            std::string::npos);
}
