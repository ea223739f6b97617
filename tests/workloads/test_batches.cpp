// The SAM, MedSAM, GlomSAM-predict, slide-folder and merge workloads in-process
// (nephroseg/workloads/*.h), and the same runs through the CLI: one library call, the
// same files.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <filesystem>
#include <fstream>
#include <random>

#include "nephroseg/core/error.h"
#include "nephroseg/io/image.h"
#include "nephroseg/workloads/glomsam_predict.h"
#include "nephroseg/workloads/merge.h"
#include "nephroseg/workloads/sam.h"
#include "nephroseg/workloads/slide.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using namespace nephroseg;
namespace t = nephroseg::test;

namespace {

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Two random RGB images in DIR/images.
std::string write_images(const std::string& dir) {
  const std::string images = dir + "/images";
  fs::create_directories(images);
  std::mt19937 rng(7);
  for (const char* name : {"a", "b"}) {
    cv::Mat m(90, 120, CV_8UC3);
    for (int i = 0; i < m.rows * m.cols * 3; ++i) m.data[i] = static_cast<uint8_t>(rng() % 256);
    cv::imwrite(images + "/" + name + ".png", m);
  }
  return images;
}

workloads::SamBatchOptions tiny_sam(const std::string& images, const std::string& out) {
  workloads::SamBatchOptions o;
  o.images = {images};
  o.out_dir = out;
  o.checkpoint = t::shared_path("golden/models/sam_tiny.pth");
  o.model_config = t::shared_path("golden/models/sam_tiny.json");
  sam::set_box(o.prompt, {10, 12, 80, 70}, "box");
  return o;
}

TEST(SamBatch, InProcessEqualsTheCliAndResumes) {
  NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.pth");
  const std::string dir = t::temp_dir("sam_batch");
  const std::string images = write_images(dir);
  std::vector<std::string> lines;
  const workloads::SamBatchResult r = workloads::run_sam_batch(tiny_sam(images, dir + "/lib"), [&](const auto& e) {
    EXPECT_EQ(e.kind, workloads::Event::Kind::kItemFinished);
    lines.push_back(e.item);
  });
  EXPECT_EQ(r.segmented, 2);
  EXPECT_EQ(r.inputs_total, 2u);
  EXPECT_EQ(lines, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(read_json(r.run_json)["command"], "sam");
  if (t::have_cli()) {
    const t::CliRun cli = t::run_cli("sam --checkpoint " + t::shared_path("golden/models/sam_tiny.pth") +
                                     " --model-config " + t::shared_path("golden/models/sam_tiny.json") +
                                     " --image " + images + " --box 10,12,80,70 --out " + dir + "/cli");
    ASSERT_EQ(cli.code, 0) << cli.output;
    for (const char* name : {"a", "b"}) {
      const std::string sub = std::string("/") + name;
      EXPECT_EQ(file_bytes(dir + "/lib" + sub + "/mask.png"), file_bytes(dir + "/cli" + sub + "/mask.png"));
      // The CLI runs on every core: the IoU head's sums may round differently.
      const nlohmann::json a = read_json(dir + "/lib" + sub + "/result.json")["iou_predictions"];
      const nlohmann::json b = read_json(dir + "/cli" + sub + "/result.json")["iou_predictions"];
      ASSERT_EQ(a.size(), b.size());
      for (size_t k = 0; k < a.size(); ++k) EXPECT_NEAR(a[k].get<double>(), b[k].get<double>(), 1e-5);
    }
  }
  workloads::SamBatchOptions again = tiny_sam(images, dir + "/lib");
  again.resume = true;
  const workloads::SamBatchResult r2 = workloads::run_sam_batch(again);
  EXPECT_EQ(r2.skipped, 2);
  EXPECT_EQ(r2.segmented, 0);
}

TEST(SamBatch, MedSamWritesTheSameResultSchema) {
  NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.pth");
  const std::string dir = t::temp_dir("medsam_batch");
  const std::string images = write_images(dir);
  workloads::SamBatchOptions o = tiny_sam(images + "/a.png", dir + "/out");
  o.preprocess = sam::SamPreprocess::kMedSam;
  const workloads::SamBatchResult r = workloads::run_sam_batch(o);
  ASSERT_EQ(r.segmented, 1);
  EXPECT_TRUE(r.run_json.empty());  // one image, whole run: result.json only
  const nlohmann::json j = read_json(dir + "/out/result.json");
  EXPECT_EQ(j["model"]["preprocess"], "medsam");
  EXPECT_EQ(j["iou_predictions"].size(), 1u);
  for (const char* key : {"image", "original_size", "prompt", "best_index", "mask_areas_px", "timings_s", "precision"})
    EXPECT_TRUE(j.contains(key)) << key;
  // MedSAM takes a box only: a point is refused before anything is written.
  workloads::SamBatchOptions bad = o;
  bad.out_dir = dir + "/bad";
  sam::add_point(bad.prompt, {5, 5}, "point");
  EXPECT_NE(t::error_of([&] { workloads::run_sam_batch(bad); }).find("box prompt only"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir + "/bad"));
}

TEST(SamBatch, ShardsMergeThroughTheOneMergeCall) {
  NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.pth");
  const std::string dir = t::temp_dir("sam_shards");
  const std::string images = write_images(dir);
  for (int k = 1; k <= 2; ++k) {
    workloads::SamBatchOptions o = tiny_sam(images, dir + "/out");
    o.shard = parse_shard(std::to_string(k) + "/2");
    EXPECT_EQ(workloads::run_sam_batch(o).segmented, 1);
  }
  std::vector<std::string> said;
  const workloads::MergeResult m =
      workloads::merge_shards(dir + "/out", [&](const workloads::Event& e) { said.push_back(e.message); });
  EXPECT_EQ(m.command, "sam");
  EXPECT_EQ(m.shards, 2);
  EXPECT_EQ(m.inputs, 2u);
  EXPECT_EQ(m.failed, 0);
  ASSERT_FALSE(said.empty());
  EXPECT_NE(said.front().find("merge: sam, 2 shard(s), 2 input(s)"), std::string::npos) << said.front();
  EXPECT_EQ(read_json(dir + "/out/run.json")["items"].size(), 2u);
}

TEST(GlomSamPredictBatch, InProcessEqualsTheCli) {
  NEPHRO_REQUIRE_SHARED("golden/glomsam/full_model.pth");
  NEPHRO_REQUIRE_SHARED("data/glomeruli/images/10003.png");
  const std::string dir = t::temp_dir("glomsam_predict_batch");
  workloads::GlomSamPredictOptions o;
  o.checkpoint = t::shared_path("golden/glomsam/full_model.pth");
  o.config = "tiny";
  // A 256 x 256 crop keeps the model's work small (one tile).
  o.image = dir + "/10003.png";
  cv::imwrite(o.image, cv::imread(t::shared_path("data/glomeruli/images/10003.png"))(cv::Rect(0, 0, 256, 256)));
  o.out_dir = dir + "/lib";
  int finished = 0;
  const workloads::GlomSamPredictResult r = workloads::run_glomsam_predict(o, [&](const workloads::Event& e) {
    if (e.kind != workloads::Event::Kind::kItemFinished) return;
    ++finished;
    const auto* item = std::any_cast<const workloads::GlomSamPredictItem*>(&e.detail);
    ASSERT_TRUE(item);
    EXPECT_EQ((*item)->path, o.image);
  });
  EXPECT_EQ(finished, 1);
  ASSERT_EQ(r.items.size(), 1u);
  for (const char* f : {"10003_mask.png", "10003_labels.tif", "10003.geojson", "10003_overlay.png"})
    EXPECT_TRUE(fs::is_regular_file(dir + "/lib/" + f)) << f;
  if (t::have_cli()) {
    const t::CliRun cli = t::run_cli("glomsam predict --checkpoint " + o.checkpoint + " --config tiny --image " +
                                     o.image + " --out " + dir + "/cli");
    ASSERT_EQ(cli.code, 0) << cli.output;
    EXPECT_EQ(file_bytes(dir + "/lib/10003_mask.png"), file_bytes(dir + "/cli/10003_mask.png"));
    EXPECT_EQ(file_bytes(dir + "/lib/10003.geojson"), file_bytes(dir + "/cli/10003.geojson"));
  }
  // --box-from-gt without --gt is refused before anything is written.
  workloads::GlomSamPredictOptions bad = o;
  bad.out_dir = dir + "/bad";
  bad.box_from_ground_truth = true;
  EXPECT_NE(t::error_of([&] { workloads::run_glomsam_predict(bad); }).find("--box-from-gt needs --gt"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dir + "/bad"));
}

// Two small "slides" (PNG files are slides too) with bright discs on a dark background.
std::string write_slides(const std::string& dir) {
  const std::string slides = dir + "/slides";
  fs::create_directories(slides);
  for (int k = 0; k < 2; ++k) {
    cv::Mat m(600, 700, CV_8UC3, cv::Scalar(235, 235, 235));
    cv::circle(m, {200 + 100 * k, 250}, 120, cv::Scalar(180, 120, 170), cv::FILLED);
    cv::circle(m, {200 + 100 * k, 250}, 40, cv::Scalar(120, 60, 120), cv::FILLED);
    cv::imwrite(slides + "/s" + std::to_string(k) + ".png", m);
  }
  return slides;
}

TEST(SlideBatch, FolderInProcessWritesEachSlideAndTheRecord) {
  const std::string dir = t::temp_dir("slide_batch");
  workloads::SlideBatchOptions o;
  o.slide = write_slides(dir);
  o.out_dir = dir + "/out";
  o.run.tile = 256;
  o.run.halo = 32;
  o.run.mpp = 0.5;  // PNG slides carry no pixel size
  std::vector<std::string> finished;
  int progress = 0;
  const workloads::SlideBatchResult r = workloads::run_slide_batch(o, [&](const workloads::Event& e) {
    if (e.kind == workloads::Event::Kind::kProgress) ++progress;
    if (e.kind == workloads::Event::Kind::kItemFinished) finished.push_back(e.item);
  });
  EXPECT_EQ(r.inputs_total, 2u);
  EXPECT_EQ(r.tile, 256);  // the weight-free segmenter keeps the given tile
  EXPECT_EQ(finished, (std::vector<std::string>{"s0", "s1"}));
  EXPECT_GT(progress, 0);
  for (const char* s : {"s0", "s1"}) EXPECT_TRUE(fs::is_regular_file(dir + "/out/" + s + "/objects.geojson")) << s;
  const nlohmann::json run = read_json(r.run_json);
  EXPECT_EQ(run["command"], "slide");
  EXPECT_EQ(run["items"].size(), 2u);
  EXPECT_TRUE(run["complete"].get<bool>());
}

TEST(SlideBatch, AShardOfOneSlideIsRefused) {
  const std::string dir = t::temp_dir("slide_batch_shard");
  workloads::SlideBatchOptions o;
  o.slide = write_slides(dir) + "/s0.png";
  o.out_dir = dir + "/out";
  o.shard = parse_shard("1/2");
  EXPECT_NE(t::error_of([&] { workloads::run_slide_batch(o); }).find("splits a folder"), std::string::npos);
}

}  // namespace
