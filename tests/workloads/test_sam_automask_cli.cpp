// `nephroseg sam --auto` end to end against the automatic-mask goldens
// (tests/golden/automask: the masks segment-anything's and ksugar's generators made on
// the tiny SAM). The CLI runs with a golden case's options, spelt as CLI options from
// cases.json, on that case's image (written here from automask.ref.pt), and its files
// are compared with the reference's masks and records; nothing expected is computed by
// the code under test. Also: the prompt/--auto usage error and a bad generator option.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <fstream>
#include <string>
#include <vector>

#include "support/golden.h"

namespace fs = std::filesystem;
namespace t = nephroseg::test;
using nlohmann::json;

namespace {

// As tests/golden/automask/README.md: a mask may differ by float32-noise flips (at most
// 2 pixels, measured 0), scores by float32 noise.
constexpr int64_t kMaxFlippedPixels = 2;
constexpr double kScoreAtol = 1e-5;

std::string golden_dir() { return t::source_dir() + "/tests/golden/automask"; }

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

json golden_case(const std::string& name) {
  const json cases = read_json(golden_dir() + "/cases.json");
  for (const json& c : cases["cases"])
    if (c["name"] == name) return c;
  ADD_FAILURE() << "no case " << name << " in cases.json";
  return {};
}

// The case's options as CLI options. The "sa" generator is segment-anything's: output
// type "Multi-mask (best quality)" and image-edge masks kept, unless the case says.
std::string cli_options(const json& c) {
  json o = c["options"];
  if (c["generator"] == "sa") {
    if (!o.contains("output_type")) o["output_type"] = "Multi-mask (best quality)";
    if (!o.contains("include_image_edge")) o["include_image_edge"] = true;
  }
  std::string args;
  for (const auto& [key, v] : o.items()) {
    std::string flag = "--" + key;
    for (char& ch : flag)
      if (ch == '_') ch = '-';
    if (v.is_boolean()) args += " " + flag + (v.get<bool>() ? "" : "=false");
    else if (v.is_string()) args += " " + flag + " '" + v.get<std::string>() + "'";
    else args += " " + flag + " " + v.dump();
  }
  return args;
}

// np.packbits rows (big bit order) -> [N, H, W] uint8 0/255, independent of the library.
std::vector<cv::Mat> unpack_masks(const at::Tensor& packed, int h, int w) {
  const at::Tensor p = packed.contiguous();
  const uint8_t* src = p.data_ptr<uint8_t>();
  const int64_t row = p.size(1);
  std::vector<cv::Mat> out;
  for (int64_t i = 0; i < p.size(0); ++i) {
    cv::Mat m(h, w, CV_8UC1);
    for (int64_t k = 0; k < int64_t{h} * w; ++k) m.data[k] = ((src[i * row + k / 8] >> (7 - k % 8)) & 1) ? 255 : 0;
    out.push_back(m);
  }
  return out;
}

// Writes the golden image (uint8 RGB [H, W, 3]) as a PNG with OpenCV alone.
void write_rgb_png(const at::Tensor& rgb, const std::string& path) {
  const at::Tensor c = rgb.contiguous();
  cv::Mat m(static_cast<int>(c.size(0)), static_cast<int>(c.size(1)), CV_8UC3, c.data_ptr<uint8_t>());
  cv::Mat bgr;
  cv::cvtColor(m, bgr, cv::COLOR_RGB2BGR);
  ASSERT_TRUE(cv::imwrite(path, bgr));
}

// The label the reference implies at each pixel: the covering mask of highest
// predicted IoU (ties: the first), 0 where none covers.
cv::Mat expected_labels(const std::vector<cv::Mat>& masks, const at::Tensor& iou) {
  cv::Mat labels = cv::Mat::zeros(masks.front().size(), CV_32S);
  cv::Mat best(masks.front().size(), CV_64F, cv::Scalar(-1e300));
  for (size_t k = 0; k < masks.size(); ++k) {
    const double s = iou[static_cast<int64_t>(k)].item<double>();
    for (int y = 0; y < labels.rows; ++y)
      for (int x = 0; x < labels.cols; ++x)
        if (masks[k].at<uint8_t>(y, x) && s > best.at<double>(y, x)) {
          best.at<double>(y, x) = s;
          labels.at<int>(y, x) = static_cast<int>(k + 1);
        }
  }
  return labels;
}

// Compares one image's output folder with the golden case `prefix`.
void expect_golden_outputs(const std::string& dir, std::map<std::string, at::Tensor>& ref, const std::string& prefix,
                           int h, int w) {
  const std::vector<cv::Mat> golden = unpack_masks(ref.at(prefix + "masks_packed"), h, w);
  const size_t n = golden.size();
  ASSERT_GT(n, 0u);
  // masks/: exactly the golden masks, in order.
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir + "/masks")) files += e.is_regular_file();
  EXPECT_EQ(files, n) << dir;
  for (size_t k = 0; k < n; ++k) {
    const cv::Mat m = cv::imread(dir + "/masks/mask_" + std::to_string(k) + ".png", cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(m.empty()) << "mask " << k;
    ASSERT_EQ(m.type(), CV_8UC1);
    ASSERT_EQ(m.size(), golden[k].size());
    EXPECT_LE(cv::countNonZero(m != golden[k]), kMaxFlippedPixels) << dir << " mask " << k;
  }
  // masks.json: the reference's records.
  const json records = read_json(dir + "/masks.json");
  ASSERT_EQ(records.size(), n);
  const auto d = [&](const char* key) { return ref.at(prefix + key).to(at::kDouble).contiguous(); };
  const at::Tensor area = d("area"), bbox = d("bbox"), crop = d("crop_box"), point = d("point_coords");
  const at::Tensor iou = d("predicted_iou"), stab = d("stability_score");
  for (size_t k = 0; k < n; ++k) {
    const json& r = records[k];
    const int64_t i = static_cast<int64_t>(k);
    EXPECT_EQ(r["file"], "masks/mask_" + std::to_string(k) + ".png");
    EXPECT_NEAR(r["area"].get<double>(), area[i].item<double>(), kMaxFlippedPixels) << k;
    for (int64_t c = 0; c < 4; ++c) {
      EXPECT_NEAR(r["bbox"][c].get<double>(), bbox[i][c].item<double>(), 1.0) << k;
      EXPECT_EQ(r["crop_box"][c].get<double>(), crop[i][c].item<double>()) << k;
    }
    EXPECT_NEAR(r["point_coords"][0][0].get<double>(), point[i][0].item<double>(), 1e-9) << k;
    EXPECT_NEAR(r["point_coords"][0][1].get<double>(), point[i][1].item<double>(), 1e-9) << k;
    EXPECT_NEAR(r["predicted_iou"].get<double>(), iou[i].item<double>(), kScoreAtol) << k;
    EXPECT_NEAR(r["stability_score"].get<double>(), stab[i].item<double>(), kScoreAtol) << k;
  }
  // labels.png: the highest predicted IoU wins where masks overlap.
  const cv::Mat labels = cv::imread(dir + "/labels.png", cv::IMREAD_UNCHANGED);
  ASSERT_FALSE(labels.empty());
  EXPECT_EQ(labels.depth(), n > 255 ? CV_16U : CV_8U);
  cv::Mat labels32;
  labels.convertTo(labels32, CV_32S);
  EXPECT_LE(cv::countNonZero(labels32 != expected_labels(golden, iou)), kMaxFlippedPixels * static_cast<int>(n));
  // masks.geojson: one outline (feature) per mask at least, each labelled.
  const json geo = read_json(dir + "/masks.geojson");
  std::set<int> seen;
  for (const json& f : geo["features"]) seen.insert(f["properties"]["measurements"]["Label"].get<int>());
  EXPECT_EQ(seen.size(), n);
  const json result = read_json(dir + "/result.json");
  EXPECT_EQ(result["mode"], "automask");
  EXPECT_EQ(result["mask_count"], n);
}

class SamAutoCli : public ::testing::TestWithParam<const char*> {};

TEST_P(SamAutoCli, WritesTheGoldenMasks) {
  NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.pth");
  if (!t::have_cli()) GTEST_SKIP() << "the nephroseg CLI is not built";
  const json c = golden_case(GetParam());
  auto ref = t::load_ref_pt(golden_dir() + "/automask.ref.pt");
  const at::Tensor image = ref.at("image." + c["image"].get<std::string>());
  const int h = c["image_hw"][0].get<int>(), w = c["image_hw"][1].get<int>();
  ASSERT_EQ(image.size(0), h);
  ASSERT_EQ(image.size(1), w);

  // Two copies of the image: the per-image folders out/<stem>/ of a batch.
  const std::string dir = t::temp_dir(std::string("sam_auto_") + GetParam());
  fs::create_directories(dir + "/images");
  write_rgb_png(image, dir + "/images/a.png");
  write_rgb_png(image, dir + "/images/b.png");
  const t::CliRun run = t::run_cli("--quiet sam --checkpoint " + t::shared_path("golden/models/sam_tiny.pth") +
                                   " --model-config " + t::shared_path("golden/models/sam_tiny.json") +
                                   " --image " + dir + "/images --auto" + cli_options(c) + " --out " + dir + "/out");
  ASSERT_EQ(run.code, 0) << run.output;
  const std::string prefix = c["name"].get<std::string>() + ".";
  for (const char* stem : {"a", "b"}) {
    SCOPED_TRACE(stem);
    expect_golden_outputs(dir + "/out/" + stem, ref, prefix, h, w);
  }
  const json run_json = read_json(dir + "/out/run.json");
  EXPECT_EQ(run_json["command"], "sam");
  EXPECT_EQ(run_json["settings"]["automask"]["points_per_side"], c["options"]["points_per_side"]);
}

// small_smallest_crops: the fork's output type with crops; synth_default:
// segment-anything's generator with 91 overlapping masks.
INSTANTIATE_TEST_SUITE_P(GoldenCases, SamAutoCli, ::testing::Values("small_smallest_crops", "synth_default"));

// Spelling the golden options wrongly is caught by the same comparison (the test can fail).
TEST(SamAutoCliCheck, AnotherOptionGivesOtherMasks) {
  NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.pth");
  if (!t::have_cli()) GTEST_SKIP() << "the nephroseg CLI is not built";
  const json c = golden_case("synth_largest");
  auto ref = t::load_ref_pt(golden_dir() + "/automask.ref.pt");
  const std::string dir = t::temp_dir("sam_auto_other");
  write_rgb_png(ref.at("image.synth"), dir + "/synth.png");
  std::string args = cli_options(c);
  const std::string from = "'Multi-mask (largest)'";
  args.replace(args.find(from), from.size(), "'Multi-mask (smallest)'");
  const t::CliRun run = t::run_cli("--quiet sam --checkpoint " + t::shared_path("golden/models/sam_tiny.pth") +
                                   " --model-config " + t::shared_path("golden/models/sam_tiny.json") + " --image " +
                                   dir + "/synth.png --auto" + args + " --out " + dir + "/out");
  ASSERT_EQ(run.code, 0) << run.output;
  const std::vector<cv::Mat> golden = unpack_masks(ref.at("synth_largest.masks_packed"), 72, 100);
  const json records = read_json(dir + "/out/masks.json");
  bool differs = records.size() != golden.size();
  for (size_t k = 0; !differs && k < golden.size(); ++k)
    differs = cv::countNonZero(cv::imread(dir + "/out/masks/mask_" + std::to_string(k) + ".png",
                                          cv::IMREAD_UNCHANGED) != golden[k]) > kMaxFlippedPixels;
  EXPECT_TRUE(differs) << "'Multi-mask (smallest)' gave the masks of 'Multi-mask (largest)'";
}

TEST(SamAutoCliUsage, PromptsAndBadOptionsAreNamed) {
  NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.pth");
  if (!t::have_cli()) GTEST_SKIP() << "the nephroseg CLI is not built";
  const std::string dir = t::temp_dir("sam_auto_usage");
  cv::imwrite(dir + "/img.png", cv::Mat(40, 40, CV_8UC3, cv::Scalar(90, 120, 200)));
  const std::string base = "sam --checkpoint " + t::shared_path("golden/models/sam_tiny.pth") + " --model-config " +
                           t::shared_path("golden/models/sam_tiny.json") + " --image " + dir + "/img.png --out " +
                           dir + "/out ";
  const t::CliRun box = t::run_cli(base + "--auto --box 1,1,20,20");
  EXPECT_EQ(box.code, 2) << box.output;
  EXPECT_NE(box.output.find("--auto prompts a grid of points itself"), std::string::npos) << box.output;
  const t::CliRun zero = t::run_cli(base + "--auto --points-per-side 0");
  EXPECT_EQ(zero.code, 1) << zero.output;
  EXPECT_NE(zero.output.find("points_per_side must lie in [1, 256]"), std::string::npos) << zero.output;
  const t::CliRun type = t::run_cli(base + "--auto --output-type Multi-mask");
  EXPECT_EQ(type.code, 2) << type.output;
  EXPECT_NE(type.output.find("--output-type"), std::string::npos) << type.output;
  EXPECT_FALSE(fs::exists(dir + "/out")) << "a refused run wrote its output folder";
}

}  // namespace
