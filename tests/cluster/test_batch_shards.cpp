// --shard K/N and `nephroseg merge` for the batch commands other than gbmseg (measure,
// eval, sam, glomsam predict, slide): three shards run in any order plus a merge must
// write what one process writes, byte for byte, and a missing shard is named.
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cluster_support.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using namespace nephroseg::test;
using namespace nephroseg::test::cluster;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "" when every listed file (relative) is byte-identical in both folders.
std::string same_files(const std::string& a, const std::string& b, const std::vector<std::string>& files) {
  for (const auto& f : files) {
    if (!fs::is_regular_file(fs::path(a) / f)) return f + " is missing in " + a;
    if (!fs::is_regular_file(fs::path(b) / f)) return f + " is missing in " + b;
    if (read_bytes((fs::path(a) / f).string()) != read_bytes((fs::path(b) / f).string())) return f + " differs";
  }
  return "";
}

// Every regular file under `a` (relative paths), except those named in `skip`.
std::vector<std::string> files_under(const std::string& a, const std::vector<std::string>& skip = {}) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(a)) {
    if (!e.is_regular_file()) continue;
    const std::string rel = fs::relative(e.path(), a).string();
    if (std::find(skip.begin(), skip.end(), rel) == skip.end()) out.push_back(rel);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Runs `command --out OUT --shard K/3` for K = 3, 1, 2, checking after the first that a
// merge names the missing shards, then merges.
void run_three_shards(const std::string& command, const std::string& out) {
  CliRun first = run_cli("--quiet " + command + " --out " + out + " --shard 3/3");
  ASSERT_EQ(first.code, 0) << first.output;
  CliRun early = run_cli("merge " + out);
  EXPECT_EQ(early.code, 1) << early.output;
  EXPECT_NE(early.output.find("shard(s) 1, 2 of 3 have not finished"), std::string::npos) << early.output;
  EXPECT_FALSE(fs::exists(out + "/run.json"));
  for (int k : {1, 2}) {
    CliRun s = run_cli("--quiet " + command + " --out " + out + " --shard " + std::to_string(k) + "/3");
    ASSERT_EQ(s.code, 0) << s.output;
  }
  CliRun merged = run_cli("merge " + out);
  ASSERT_EQ(merged.code, 0) << merged.output;
  EXPECT_TRUE(temporaries_in(out).empty());
}

// Phantom masks (and images) for the weight-free commands.
bool make_phantoms(const std::string& dir, int n) {
  return sh(binary_dir() + "/nephroseg --quiet phantom --out '" + dir + "' --count " + std::to_string(n) +
            " --size 160") == 0;
}

}  // namespace

TEST(BatchShards, MeasureThreeShardsMergedEqualOneProcess) {
  if (!have_cli()) GTEST_SKIP() << "the nephroseg CLI is not built";
  const std::string dir = temp_dir("shards_measure");
  ASSERT_TRUE(make_phantoms(dir + "/ph", 5));
  const std::string cmd = "measure --mask " + dir + "/ph/masks --image " + dir + "/ph/images --nm-per-pixel 2.5";
  CliRun single = run_cli("--quiet " + cmd + " --out " + dir + "/single");
  ASSERT_EQ(single.code, 0) << single.output;
  run_three_shards(cmd, dir + "/sharded");
  EXPECT_EQ(same_files(dir + "/single", dir + "/sharded", {"summary.csv", "summary.json", "run.json"}), "");
  // The per-image files are the same too (every file of the single run).
  EXPECT_EQ(same_files(dir + "/single", dir + "/sharded", files_under(dir + "/single")), "");
  EXPECT_TRUE(fs::exists(dir + "/sharded/summary.shard-2-of-3.csv"));
}

TEST(BatchShards, EvalThreeShardsMergedEqualOneProcess) {
  if (!have_cli()) GTEST_SKIP() << "the nephroseg CLI is not built";
  const std::string dir = temp_dir("shards_eval");
  ASSERT_TRUE(make_phantoms(dir + "/ph", 5));
  // Predictions: the truth eroded or dilated by a few pixels, one missing, one extra.
  fs::create_directories(dir + "/pred");
  int i = 0;
  for (const auto& e : fs::directory_iterator(dir + "/ph/masks")) {
    const cv::Mat truth = cv::imread(e.path().string(), cv::IMREAD_GRAYSCALE);
    cv::Mat pred;
    const cv::Mat k = cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(2 * (i % 3) + 3, 2 * (i % 3) + 3));
    if (i % 2) cv::erode(truth, pred, k);
    else cv::dilate(truth, pred, k);
    if (i != 1) ASSERT_TRUE(cv::imwrite(dir + "/pred/" + e.path().filename().string(), pred));
    ++i;
  }
  ASSERT_TRUE(cv::imwrite(dir + "/pred/extra.png", cv::Mat(160, 160, CV_8UC1, cv::Scalar(255))));
  const std::string cmd = "eval --pred " + dir + "/pred --truth " + dir + "/ph/masks --images " + dir + "/ph/images";
  CliRun single = run_cli("--quiet " + cmd + " --out " + dir + "/single");
  ASSERT_EQ(single.code, 0) << single.output;
  run_three_shards(cmd, dir + "/sharded");
  EXPECT_EQ(same_files(dir + "/single", dir + "/sharded", files_under(dir + "/single")), "");
}

TEST(BatchShards, SamFolderThreeShardsMergedEqualOneProcess) {
  NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.pth");
  if (!have_cli()) GTEST_SKIP() << "the nephroseg CLI is not built";
  const std::string dir = temp_dir("shards_sam");
  ASSERT_TRUE(make_phantoms(dir + "/ph", 4));
  const std::string cmd = "sam --checkpoint " + shared_path("golden/models/sam_tiny.pth") + " --model-config " +
                          shared_path("golden/models/sam_tiny.json") + " --image " + dir +
                          "/ph/images --box 20,20,140,140";
  CliRun single = run_cli("--quiet " + cmd + " --out " + dir + "/single");
  ASSERT_EQ(single.code, 0) << single.output;
  run_three_shards(cmd, dir + "/sharded");
  // result.json holds the timings; every other file must match.
  std::vector<std::string> files;
  for (const auto& f : files_under(dir + "/single"))
    if (fs::path(f).filename() != "result.json") files.push_back(f);
  EXPECT_GT(files.size(), 8u);
  EXPECT_EQ(same_files(dir + "/single", dir + "/sharded", files), "");
  // --resume skips what is done: a rerun of shard 1 segments nothing.
  CliRun again = run_cli("sam --checkpoint " + shared_path("golden/models/sam_tiny.pth") + " --model-config " +
                         shared_path("golden/models/sam_tiny.json") + " --image " + dir +
                         "/ph/images --box 20,20,140,140 --out " + dir + "/sharded --shard 1/3 --resume");
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_NE(again.output.find("0 of 4 image(s) segmented"), std::string::npos) << again.output;
}

TEST(BatchShards, GlomsamPredictFolderThreeShardsMergedEqualOneProcess) {
  NEPHRO_REQUIRE_SHARED("golden/glomsam/full_model.pth");
  if (!have_cli()) GTEST_SKIP() << "the nephroseg CLI is not built";
  const std::string dir = temp_dir("shards_glomsam");
  ASSERT_TRUE(make_phantoms(dir + "/ph", 4));
  const std::string cmd = "glomsam predict --checkpoint " + shared_path("golden/glomsam/full_model.pth") +
                          " --config tiny --image " + dir + "/ph/images";
  CliRun single = run_cli("--quiet " + cmd + " --out " + dir + "/single");
  ASSERT_EQ(single.code, 0) << single.output;
  run_three_shards(cmd, dir + "/sharded");
  EXPECT_EQ(same_files(dir + "/single", dir + "/sharded", files_under(dir + "/single")), "");
}

TEST(BatchShards, SlideFolderThreeShardsMergedEqualOneProcess) {
  if (!have_cli()) GTEST_SKIP() << "the nephroseg CLI is not built";
  const std::string dir = temp_dir("shards_slide");
  ASSERT_TRUE(make_phantoms(dir + "/ph", 4));
  const std::string cmd = "slide --slide " + dir + "/ph/images --mpp 1 --tile 96 --halo 16 --tissue none";
  CliRun single = run_cli("--quiet " + cmd + " --out " + dir + "/single");
  ASSERT_EQ(single.code, 0) << single.output;
  run_three_shards(cmd, dir + "/sharded");
  // Each slide's own run.json records its wall times; every other file must match.
  std::vector<std::string> files;
  for (const auto& f : files_under(dir + "/single"))
    if (f == "run.json" || fs::path(f).filename() != "run.json") files.push_back(f);
  EXPECT_GT(files.size(), 4u);
  EXPECT_EQ(same_files(dir + "/single", dir + "/sharded", files), "");
  // One slide file cannot be split.
  CliRun one = run_cli("slide --slide " + dir + "/ph/images/phantom_0.png --mpp 1 --out " + dir + "/one --shard 1/2");
  EXPECT_EQ(one.code, 1) << one.output;
  EXPECT_NE(one.output.find("--shard splits a folder of slides"), std::string::npos) << one.output;
}
