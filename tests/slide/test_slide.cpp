// Whole slides: readers, tissue, tiles, stitching, outputs, resume and bad input.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "nephroseg/core/error.h"
#include "nephroseg/slide/reader.h"
#include "nephroseg/slide/run.h"
#include "slide_fixtures.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using nephroseg::Error;
namespace slide = nephroseg::slide;
namespace t = nephroseg::test;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A synthetic fluorescence-like scene at 0.5 µm/px: tissue (value 50) on black, bright
// objects (200) of known geometry, several across the default tile grid (core stride
// 768: edges at 768, 1536, 2304), one 500 px across (larger than the halo), plus a
// speck and a thin bar that the size / shape filters must drop.
struct Truth {
  cv::Point center;
  cv::Size axes;  // ellipse half-axes (px)
};
const std::vector<Truth> kObjects = {
    {{768, 768}, {150, 150}},    // corner of four tiles
    {{1536, 420}, {120, 120}},   // vertical core edge
    {{420, 1536}, {200, 130}},   // horizontal core edge, ellipse
    {{1150, 1200}, {100, 100}},  // inside one core
    {{2304, 1536}, {250, 250}},  // 500 px across, at a corner
    {{2620, 620}, {90, 110}},    // near the slide edge
};
const cv::Size kScene(3000, 2600);

cv::Mat truth_mask(int index) {
  cv::Mat m = cv::Mat::zeros(kScene, CV_8U);
  cv::ellipse(m, kObjects[index].center, kObjects[index].axes, 0, 0, 360, cv::Scalar(255), cv::FILLED, cv::LINE_8);
  return m;
}

cv::Mat scene(int value_tissue, int value_object, int value_outside) {
  cv::Mat m(kScene, CV_8U, cv::Scalar(value_outside));
  cv::rectangle(m, cv::Rect(60, 60, 2880, 2480), cv::Scalar(value_tissue), cv::FILLED);
  for (size_t i = 0; i < kObjects.size(); ++i) m.setTo(value_object, truth_mask(static_cast<int>(i)));
  cv::circle(m, {1900, 2200}, 12, cv::Scalar(value_object), cv::FILLED);                      // speck
  cv::rectangle(m, cv::Rect(300, 2300, 700, 36), cv::Scalar(value_object), cv::FILLED);        // thin bar
  cv::Mat noise(kScene, CV_16S);
  cv::RNG rng(7);
  rng.fill(noise, cv::RNG::NORMAL, 0, 4);
  cv::Mat out;
  cv::Mat m16;
  m.convertTo(m16, CV_16S);
  m16 += noise;
  m16.convertTo(out, CV_8U);
  return out;
}

std::vector<cv::Mat> pyramid(const cv::Mat& level0, int levels) {
  std::vector<cv::Mat> v{level0};
  for (int k = 1; k < levels; ++k) {
    cv::Mat d;
    cv::resize(v.back(), d, cv::Size((v.back().cols + 1) / 2, (v.back().rows + 1) / 2), 0, 0, cv::INTER_AREA);
    v.push_back(d);
  }
  return v;
}

struct Case {
  std::string name;
  int depth;       // 8 or 16
  int channels;    // 1 or 3
  bool ome, subifds, tiled, brightfield;
};

std::string write_case(const Case& c, const std::string& dir) {
  cv::Mat grey = c.brightfield ? scene(/*tissue=*/200, /*object=*/60, /*outside=*/250) : scene(50, 200, 0);
  cv::Mat m = grey;
  if (c.channels == 3) {
    cv::Mat zero = cv::Mat::zeros(grey.size(), CV_8U);
    std::vector<cv::Mat> planes = c.brightfield ? std::vector<cv::Mat>{grey, grey, grey}
                                                : std::vector<cv::Mat>{zero, grey, grey / 4};
    cv::merge(planes, m);
  }
  if (c.depth == 16) m.convertTo(m, CV_16U, 180.0);
  t::FixtureTiff f;
  f.levels = pyramid(m, c.tiled ? 3 : 1);
  f.ome = c.ome;
  f.subifds = c.subifds;
  f.tiled = c.tiled;
  f.mpp = 0.5;
  if (c.ome) for (int k = 0; k < c.channels; ++k) f.channel_names.push_back("ch" + std::to_string(k));
  const std::string path = dir + "/" + c.name + (c.ome ? ".ome.tif" : ".tif");
  t::write_fixture_tiff(path, f);
  return path;
}

double iou(const cv::Mat& a, const cv::Mat& b) {
  const double inter = cv::countNonZero(a & b), uni = cv::countNonZero(a | b);
  return uni > 0 ? inter / uni : 0.0;
}

class SyntheticSlides : public ::testing::TestWithParam<Case> {};

TEST_P(SyntheticSlides, ObjectsComeOutWholeOnceWithExactGeometry) {
  const Case c = GetParam();
  const std::string dir = t::temp_dir("slide_" + c.name);
  const std::string path = write_case(c, dir);
  auto reader = slide::open_slide(path);
  EXPECT_EQ(reader->info().backend, "tiff");
  EXPECT_NEAR(reader->info().mpp_x, 0.5, 1e-6);
  EXPECT_EQ(reader->info().depth, c.depth);
  EXPECT_EQ(reader->info().levels.size(), c.tiled ? 3u : 1u);
  auto seg = slide::make_segmenter("classical");
  const auto r = slide::run_slide(path, dir + "/out", *seg);
  ASSERT_TRUE(r.complete);
  EXPECT_GT(r.tiles_total, 0);
  std::string found;
  for (const auto& o : r.objects)
    found += " (" + std::to_string(o.centroid_x) + ", " + std::to_string(o.centroid_y) + "; " +
             std::to_string(o.area_um2) + " um2, solidity " + std::to_string(o.solidity) + ")";
  ASSERT_EQ(r.objects.size(), kObjects.size()) << "exact object count (no duplicates, no fragments); found" << found
                                               << "; candidates " << r.components;
  const cv::Mat labels = t::read_label_level(dir + "/out/labels.ome.tif", 0);
  ASSERT_EQ(labels.size(), kScene);
  for (size_t i = 0; i < kObjects.size(); ++i) {
    const cv::Mat truth = truth_mask(static_cast<int>(i));
    // The label covering the object's centre is the object; it must match the truth.
    const int id = labels.at<int>(kObjects[i].center);
    ASSERT_GT(id, 0) << "object " << i << " missing";
    const cv::Mat mine = labels == id;
    EXPECT_GT(iou(mine, truth), 0.95) << "object " << i;
    const auto& o = r.objects[id - 1];
    EXPECT_EQ(o.id, id);
    // Pixel centres at +0.5: a symmetric ellipse around an integer centre has its
    // centroid at centre + 0.5 in level-0 pixel coordinates.
    EXPECT_NEAR(o.centroid_x, kObjects[i].center.x + 0.5, 1.0) << "object " << i;
    EXPECT_NEAR(o.centroid_y, kObjects[i].center.y + 0.5, 1.0) << "object " << i;
    const double area_um2 = M_PI * kObjects[i].axes.width * kObjects[i].axes.height * 0.25;
    EXPECT_NEAR(o.area_um2, area_um2, 0.03 * area_um2) << "object " << i;
  }
  // Outputs exist and parse.
  nlohmann::json gj = nlohmann::json::parse(read_bytes(dir + "/out/objects.geojson"));
  EXPECT_EQ(gj["type"], "FeatureCollection");
  EXPECT_EQ(gj["features"].size(), kObjects.size());
  nlohmann::json run = nlohmann::json::parse(read_bytes(dir + "/out/run.json"));
  EXPECT_EQ(run["segmenter"], "classical");
  EXPECT_EQ(run["counts"]["objects"], static_cast<int>(kObjects.size()));
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, SyntheticSlides,
    ::testing::Values(Case{"ome8_grey_subifd", 8, 1, true, true, true, false},
                      Case{"tiff16_rgb_pages", 16, 3, false, false, true, false},
                      Case{"ome16_grey_subifd", 16, 1, true, true, true, false},
                      Case{"brightfield8_rgb_strips", 8, 3, false, false, false, true}),
    [](const auto& info) { return info.param.name; });

TEST(SlideStitching, SameObjectsWhateverTheTileGrid) {
  const std::string dir = t::temp_dir("slide_grid");
  const std::string path = write_case({"grid", 8, 1, true, true, true, false}, dir);
  auto seg = slide::make_segmenter("classical");
  slide::SlideRunOptions a;
  const auto ra = slide::run_slide(path, dir + "/a", *seg, a);
  slide::SlideRunOptions b;
  b.tile = 448;  // cores of 320 px: every object crosses several tiles
  b.halo = 64;
  const auto rb = slide::run_slide(path, dir + "/b", *seg, b);
  ASSERT_EQ(ra.objects.size(), kObjects.size());
  ASSERT_EQ(rb.objects.size(), kObjects.size());
  const cv::Mat la = t::read_label_level(dir + "/a/labels.ome.tif", 0);
  const cv::Mat lb = t::read_label_level(dir + "/b/labels.ome.tif", 0);
  for (const auto& o : kObjects) {
    const cv::Mat ma = la == la.at<int>(o.center), mb = lb == lb.at<int>(o.center);
    EXPECT_GT(iou(ma, mb), 0.99) << "object at " << o.center;
  }
}

TEST(SlideOutputs, LabelPyramidGeoJsonTsv) {
  const std::string dir = t::temp_dir("slide_outputs");
  const std::string path = write_case({"outs", 8, 1, true, true, true, false}, dir);
  auto seg = slide::make_segmenter("classical");
  slide::SlideRunOptions opt;
  opt.object_type = slide::ObjectType::kDetection;
  const auto r = slide::run_slide(path, dir + "/out", *seg, opt);
  std::string desc;
  int levels = 0;
  const cv::Mat l0 = t::read_label_level(dir + "/out/labels.ome.tif", 0, &desc, &levels);
  EXPECT_GE(levels, 4);  // 3000 px -> 1500 -> 750 -> 375 -> 188 (< 256)
  EXPECT_NE(desc.find("PhysicalSizeX=\"0.5\""), std::string::npos) << desc;
  EXPECT_NE(desc.find("Type=\"uint32\""), std::string::npos);
  const cv::Mat l2 = t::read_label_level(dir + "/out/labels.ome.tif", 2);
  ASSERT_EQ(l2.size(), cv::Size(750, 650));
  for (int y = 0; y < l2.rows; y += 37)
    for (int x = 0; x < l2.cols; x += 41) ASSERT_EQ(l2.at<int>(y, x), l0.at<int>(4 * y, 4 * x)) << "nearest";
  nlohmann::json gj = nlohmann::json::parse(read_bytes(dir + "/out/objects.geojson"));
  for (const auto& f : gj["features"]) {
    EXPECT_EQ(f["properties"]["objectType"], "detection");
    EXPECT_EQ(f["properties"]["classification"]["name"], "Glomerulus");
    EXPECT_TRUE(f["properties"]["measurements"].is_object());
    EXPECT_TRUE(f["properties"]["measurements"].contains("ch0: Median"));
    const auto& ring = f["geometry"]["coordinates"][0];
    EXPECT_EQ(ring.front(), ring.back()) << "closed ring";
  }
  std::ifstream tsv(dir + "/out/objects.tsv");
  std::string header;
  std::getline(tsv, header);
  EXPECT_EQ(header.rfind("Image\tObject ID\tObject type\tClassification\tCentroid X µm\tCentroid Y µm\tArea µm^2\t"
                         "Perimeter µm\t", 0),
            0u)
      << header;
  std::string line;
  int rows = 0;
  while (std::getline(tsv, line)) ++rows;
  EXPECT_EQ(rows, static_cast<int>(r.objects.size()));
  const cv::Mat thumb = cv::imread(dir + "/out/thumbnail.png");
  EXPECT_FALSE(thumb.empty());
}

TEST(SlideResume, KilledRunResumesByteIdentical) {
  const std::string dir = t::temp_dir("slide_resume");
  const std::string path = write_case({"resume", 8, 1, true, true, true, false}, dir);
  auto seg = slide::make_segmenter("classical");
  slide::SlideRunOptions opt;
  opt.tile = 512;
  opt.halo = 64;
  slide::run_slide(path, dir + "/whole", *seg, opt);
  slide::SlideRunOptions stop = opt;
  stop.stop_after_tiles = 5;
  const auto first = slide::run_slide(path, dir + "/resumed", *seg, stop);
  EXPECT_FALSE(first.complete);
  EXPECT_FALSE(fs::exists(dir + "/resumed/objects.geojson"));
  EXPECT_FALSE(fs::exists(dir + "/resumed/run.json"));
  stop.stop_after_tiles = 3;
  slide::run_slide(path, dir + "/resumed", *seg, stop);
  const auto last = slide::run_slide(path, dir + "/resumed", *seg, opt);
  EXPECT_TRUE(last.complete);
  EXPECT_EQ(last.tiles_resumed, 8);
  for (const char* f : {"objects.geojson", "objects.tsv", "labels.ome.tif", "thumbnail.png"})
    EXPECT_EQ(read_bytes(dir + "/whole/" + f), read_bytes(dir + "/resumed/" + f)) << f;
  auto a = nlohmann::json::parse(read_bytes(dir + "/whole/run.json"));
  auto b = nlohmann::json::parse(read_bytes(dir + "/resumed/run.json"));
  a.erase("timings_s");
  b.erase("timings_s");
  EXPECT_EQ(a, b);
  // Other options into the same folder are refused.
  slide::SlideRunOptions other = opt;
  other.halo = 32;
  EXPECT_THROW(slide::run_slide(path, dir + "/resumed", *seg, other), Error);
}

void expect_error(const std::function<void()>& f, const std::string& needle, const std::string& out) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line: " << e.what();
  }
  EXPECT_FALSE(fs::exists(out) && !fs::is_empty(out)) << "nothing may be written into " << out;
}

TEST(SlideBadInput, OneClearErrorEachNothingWritten) {
  const std::string dir = t::temp_dir("slide_bad");
  const std::string path = write_case({"bad", 8, 1, true, true, true, false}, dir);
  auto seg = slide::make_segmenter("classical");
  const std::string out = dir + "/out";
  expect_error([&] { slide::run_slide(dir + "/missing.svs", out, *seg); }, "no such file", out);
  { std::ofstream(dir + "/corrupt.svs") << "this is not a slide at all"; }
  expect_error([&] { slide::run_slide(dir + "/corrupt.svs", out, *seg); }, "corrupt.svs", out);
  {
    std::string bytes = read_bytes(path);
    bytes.resize(bytes.size() / 3);  // truncated TIFF
    std::ofstream(dir + "/truncated.tif", std::ios::binary) << bytes;
  }
  expect_error([&] { slide::run_slide(dir + "/truncated.tif", out, *seg); }, "truncated.tif", out);
  slide::SlideRunOptions level;
  level.level = 7;
  expect_error([&] { slide::run_slide(path, out, *seg, level); }, "--level 7 out of range", out);
  slide::SlideRunOptions roi;
  roi.has_roi = true;
  roi.roi = cv::Rect(2900, 100, 500, 500);
  expect_error([&] { slide::run_slide(path, out, *seg, roi); }, "--roi", out);
  slide::SlideRunOptions ch;
  ch.channels.channels = {3};
  expect_error([&] { slide::run_slide(path, out, *seg, ch); }, "channel 3", out);
  cv::imwrite(dir + "/plain.png", cv::Mat(300, 400, CV_8UC3, cv::Scalar(255, 255, 255)));
  expect_error([&] { slide::run_slide(dir + "/plain.png", out, *seg); }, "no pixel size", out);
  expect_error([&] { slide::make_segmenter("bogus"); }, "unknown segmenter", out);
}

TEST(SlideRoi, OnlyTheRoiIsProcessed) {
  const std::string dir = t::temp_dir("slide_roi");
  const std::string path = write_case({"roi", 8, 1, true, true, true, false}, dir);
  auto seg = slide::make_segmenter("classical");
  slide::SlideRunOptions opt;
  opt.has_roi = true;
  opt.roi = cv::Rect(900, 900, 600, 600);  // holds object 3 (centre 1150,1200) only
  const auto r = slide::run_slide(path, dir + "/out", *seg, opt);
  ASSERT_EQ(r.objects.size(), 1u);
  EXPECT_NEAR(r.objects[0].centroid_x, 1150.5, 1.0);
}

TEST(SlideResolution, CoarserWorkResolutionKeepsLevel0GeometryAndMicrons) {
  const std::string dir = t::temp_dir("slide_mpp");
  const std::string path = write_case({"mpp", 8, 1, true, true, true, false}, dir);
  auto seg = slide::make_segmenter("classical");
  for (const bool by_magnification : {false, true}) {
    slide::SlideRunOptions opt;
    if (by_magnification) opt.magnification = 10.0;  // no objective power: 10 / 10 = 1 µm/px
    else opt.mpp = 1.0;                               // between level 0 (0.5) and level 1 (1.0): level 1
    const std::string out = dir + (by_magnification ? "/mag" : "/mpp");
    const auto r = slide::run_slide(path, out, *seg, opt);
    EXPECT_DOUBLE_EQ(r.work_mpp, 1.0);
    ASSERT_EQ(r.objects.size(), kObjects.size());
    const cv::Mat labels = t::read_label_level(out + "/labels.ome.tif", 0);
    EXPECT_EQ(labels.size(), cv::Size(3000, 2600)) << "labels at level 0 (the default)";
    for (size_t i = 0; i < kObjects.size(); ++i) {
      const int id = labels.at<int>(kObjects[i].center);
      ASSERT_GT(id, 0);
      const auto& o = r.objects[id - 1];
      EXPECT_NEAR(o.centroid_x, kObjects[i].center.x + 0.5, 2.0) << "level-0 pixels, object " << i;
      EXPECT_NEAR(o.centroid_y, kObjects[i].center.y + 0.5, 2.0) << "level-0 pixels, object " << i;
      const double area_um2 = M_PI * kObjects[i].axes.width * kObjects[i].axes.height * 0.25;
      EXPECT_NEAR(o.area_um2, area_um2, 0.04 * area_um2) << "object " << i;
    }
  }
  // --labels-at work: the work grid, the same ids (nearest downsampling of the above).
  slide::SlideRunOptions work;
  work.mpp = 1.0;
  work.labels_at_level0 = false;
  slide::run_slide(path, dir + "/work", *seg, work);
  const cv::Mat small = t::read_label_level(dir + "/work/labels.ome.tif", 0);
  const cv::Mat full = t::read_label_level(dir + "/mpp/labels.ome.tif", 0);
  ASSERT_EQ(small.size(), cv::Size(1500, 1300));
  int differ = 0;
  for (int y = 0; y < small.rows; ++y)
    for (int x = 0; x < small.cols; ++x)  // level-0 pixels 2x, 2x + 1 lie in work pixel x
      differ += small.at<int>(y, x) != full.at<int>(2 * y + 1, 2 * x + 1) ||
                small.at<int>(y, x) != full.at<int>(2 * y, 2 * x);
  EXPECT_EQ(differ, 0);
  slide::SlideRunOptions both;
  both.mpp = 1.0;
  both.magnification = 10.0;
  EXPECT_THROW(slide::run_slide(path, dir + "/both", *seg, both), Error);
}

TEST(SlideOpenSlide, CmuSmallRegionEndToEnd) {
  NEPHRO_REQUIRE_SHARED("data/wsi/CMU-1-Small-Region.svs");
  const std::string svs = t::shared_path("data/wsi/CMU-1-Small-Region.svs");
  auto reader = slide::open_slide(svs);
  const auto& info = reader->info();
  EXPECT_EQ(info.backend, "openslide");
  EXPECT_EQ(info.vendor, "aperio");
  ASSERT_EQ(info.levels.size(), 1u);
  EXPECT_EQ(info.levels[0].width, 2220);
  EXPECT_EQ(info.levels[0].height, 2967);
  EXPECT_NEAR(info.mpp_x, 0.499, 1e-3);
  const cv::Mat region = reader->read_region(0, cv::Rect(1000, 1000, 300, 200));
  EXPECT_EQ(region.type(), CV_8UC3);
  EXPECT_EQ(region.size(), cv::Size(300, 200));
  cv::Scalar mean = cv::mean(region);
  EXPECT_LT(mean[1], 250) << "tissue, not blank";
  // Regions past the slide edge read as white (transparent composited on white).
  const cv::Mat outside = reader->read_region(0, cv::Rect(2300, 0, 20, 20));
  EXPECT_EQ(cv::countNonZero(outside.reshape(1) != 255), 0);
  if (!t::have_cli()) GTEST_SKIP() << "CLI not built";
  const std::string out = t::temp_dir("slide_cmu") + "/out";
  const auto run = t::run_cli("slide --slide " + svs + " --out " + out);
  ASSERT_EQ(run.code, 0) << run.output;
  auto rj = nlohmann::json::parse(read_bytes(out + "/run.json"));
  EXPECT_EQ(rj["reader"], "openslide");
  EXPECT_NEAR(rj["mpp_level0"].get<double>(), 0.499, 1e-3);
  EXPECT_GT(rj["tiles"]["tissue"].get<int>(), 0);
  auto gj = nlohmann::json::parse(read_bytes(out + "/objects.geojson"));
  for (const auto& f : gj["features"])
    for (const auto& p : f["geometry"]["type"] == "Polygon" ? f["geometry"]["coordinates"][0]
                                                             : f["geometry"]["coordinates"][0][0]) {
      EXPECT_GE(p[0].get<double>(), 0);
      EXPECT_LE(p[0].get<double>(), 2220);
      EXPECT_GE(p[1].get<double>(), 0);
      EXPECT_LE(p[1].get<double>(), 2967);
    }
  const cv::Mat labels = t::read_label_level(out + "/labels.ome.tif", 0);
  EXPECT_EQ(labels.size(), cv::Size(2220, 2967));
  double mx = 0;
  cv::minMaxLoc(labels, nullptr, &mx);
  EXPECT_EQ(static_cast<int>(mx), rj["counts"]["objects"].get<int>());
  std::cout << "CMU-1-Small-Region: " << rj["counts"]["objects"] << " objects, " << rj["tiles"]["tissue"]
            << " tissue tiles, tissue fraction " << rj["tissue_fraction"] << "\n";
}

TEST(SlideMosaic, ClassicalPrecisionRecallOnPasGlomeruli) {
  NEPHRO_REQUIRE_SHARED("data/glomeruli/images/10003.png");
  const std::vector<std::string> ids = {"10003", "10025", "10063", "10064", "10164", "10165",
                                        "10170", "10177", "10179", "10183", "10220", "10224"};
  const int gap = 96, side = 1024;
  const cv::Size size(4 * (side + gap) + gap, 3 * (side + gap) + gap);
  cv::Mat mosaic(size, CV_8UC3, cv::Scalar(245, 245, 245));
  cv::Mat truth = cv::Mat::zeros(size, CV_32S);
  int next = 1;
  for (size_t i = 0; i < ids.size(); ++i) {
    const cv::Point at(gap + static_cast<int>(i % 4) * (side + gap), gap + static_cast<int>(i / 4) * (side + gap));
    cv::Mat img = cv::imread(t::shared_path("data/glomeruli/images/" + ids[i] + ".png"), cv::IMREAD_COLOR);
    cv::Mat mask = cv::imread(t::shared_path("data/glomeruli/masks/" + ids[i] + ".png"), cv::IMREAD_COLOR);
    ASSERT_FALSE(img.empty() || mask.empty());
    cv::cvtColor(img, img, cv::COLOR_BGR2RGB);
    img.copyTo(mosaic(cv::Rect(at, img.size())));
    std::vector<cv::Mat> ch;
    cv::split(mask, ch);  // BGR: red is ch[2]
    cv::Mat comp;
    const int n = cv::connectedComponents(ch[2] > 127, comp, 4, CV_32S);
    for (int k = 1; k < n; ++k) truth(cv::Rect(at, img.size())).setTo(next++, comp == k);
  }
  const std::string dir = t::temp_dir("slide_mosaic");
  t::FixtureTiff f;
  f.levels = pyramid(mosaic, 3);
  f.mpp = 0.5;
  f.ome = false;
  f.subifds = false;
  t::write_fixture_tiff(dir + "/mosaic.tif", f);
  auto seg = slide::make_segmenter("classical");
  const auto r = slide::run_slide(dir + "/mosaic.tif", dir + "/out", *seg);
  ASSERT_TRUE(r.complete);
  const cv::Mat pred = t::read_label_level(dir + "/out/labels.ome.tif", 0);
  ASSERT_EQ(pred.size(), size);
  const int num_truth = next - 1, num_pred = static_cast<int>(r.objects.size());
  // Overlaps of every (truth, prediction) pair in one pass.
  std::map<std::pair<int, int>, int> overlap;
  std::map<int, int> area_truth, area_pred;
  for (int y = 0; y < size.height; ++y)
    for (int x = 0; x < size.width; ++x) {
      const int a = truth.at<int>(y, x), b = pred.at<int>(y, x);
      if (a) ++area_truth[a];
      if (b) ++area_pred[b];
      if (a && b) ++overlap[{a, b}];
    }
  std::set<int> truth_hit, pred_hit;
  for (const auto& [ab, n] : overlap) {
    const double u = area_truth[ab.first] + area_pred[ab.second] - n;
    if (n / u >= 0.5) {
      truth_hit.insert(ab.first);
      pred_hit.insert(ab.second);
    }
  }
  const int matched = static_cast<int>(truth_hit.size());
  const double precision = num_pred ? static_cast<double>(matched) / num_pred : 0.0;
  const double recall = static_cast<double>(matched) / num_truth;
  std::cout << "mosaic of 12 PAS patches: " << num_truth << " glomeruli, " << num_pred
            << " detections, matched at IoU 0.5: " << matched << "; precision " << precision << ", recall " << recall
            << "\n";
  RecordProperty("precision", std::to_string(precision));
  RecordProperty("recall", std::to_string(recall));
  EXPECT_GT(num_truth, 0);  // reported, not a floor
}

}  // namespace

// `nephroseg info` on slides: slide::probe_slide / slide_info_json.
TEST(SlideInfoJson, PyramidsAndSlidesAreDescribedPlainImagesAreNot) {
  const std::string dir = t::temp_dir("slide_info");
  const std::string path = write_case({"info", 8, 1, true, true, true, false}, dir);
  const auto info = slide::probe_slide(path);
  ASSERT_TRUE(info.has_value());
  const nlohmann::json j = nlohmann::json::parse(slide::slide_info_json(*info));
  ASSERT_GE(j["levels"].size(), 2u);
  EXPECT_EQ(j["levels"][0]["width"], 3000);
  EXPECT_EQ(j["levels"][0]["height"], 2600);
  EXPECT_DOUBLE_EQ(j["mpp_x"].get<double>(), 0.5);
  EXPECT_TRUE(j["objective_power"].is_null());
  cv::imwrite(dir + "/plain.png", cv::Mat(30, 40, CV_8UC3, cv::Scalar(1, 2, 3)));
  EXPECT_FALSE(slide::probe_slide(dir + "/plain.png").has_value());
  std::ofstream(dir + "/junk.svs") << "not a slide";
  EXPECT_FALSE(slide::probe_slide(dir + "/junk.svs").has_value());
  if (t::have_cli()) {
    const t::CliRun r = t::run_cli("info " + path);
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("\"slide\":{\"reader\":\"tiff\""), std::string::npos) << r.output;
  }
}

namespace {

// A TIFF opened for writing (libtiff `mode`) with the fields every image here sets;
// contiguous samples.
TIFF* new_tiff(const std::string& path, const char* mode, uint32_t width, uint32_t height, int spp, int bits,
               uint16_t photometric) {
  TIFF* tif = TIFFOpen(path.c_str(), mode);
  if (tif == nullptr) return nullptr;
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, width);
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, height);
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, spp);
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, bits);
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, photometric);
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  return tif;
}

size_t open_descriptors() {
  return static_cast<size_t>(std::distance(fs::directory_iterator("/proc/self/fd"), fs::directory_iterator()));
}

}  // namespace

TEST(SlideBadInput, RefusedTiffClosesItsFile) {
  // Regression (fuzz_slide, LeakSanitizer): a TIFF that libtiff opens but the slide
  // reader then refuses (here 32-bit float samples) leaked its TIFF handle and file.
  const std::string path = t::temp_dir("slide_fd") + "/float.tif";
  TIFF* tif = new_tiff(path, "w", 4, 4, 1, 32, PHOTOMETRIC_MINISBLACK);
  ASSERT_NE(tif, nullptr);
  TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, SAMPLEFORMAT_IEEEFP);
  TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 4u);
  float row[4] = {0, 1, 2, 3};
  for (uint32_t y = 0; y < 4; ++y) TIFFWriteScanline(tif, row, y, 0);
  TIFFClose(tif);
  EXPECT_THROW(slide::open_slide(path), Error);
  const size_t before = open_descriptors();
  for (int k = 0; k < 20; ++k) EXPECT_THROW(slide::open_slide(path), Error);
  EXPECT_EQ(open_descriptors(), before);
}

namespace {

// A hand-built TIFF: one directory of (tag, type, count, value/offset) entries, then
// `tail` bytes; classic or BigTIFF, either byte order. next_dir: the next-IFD offset.
struct RawEntry {
  uint16_t tag, type;
  uint64_t count, value;
};
std::string raw_tiff(bool bigtiff, bool big_endian, const std::vector<RawEntry>& entries, uint64_t next_dir = 0,
                     size_t tail = 64) {
  std::string b;
  auto put = [&](uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b.push_back(static_cast<char>(v >> (8 * (big_endian ? n - 1 - i : i))));
  };
  b += big_endian ? "MM" : "II";
  const int word = bigtiff ? 8 : 4;
  put(bigtiff ? 43 : 42, 2);
  if (bigtiff) {
    put(8, 2);
    put(0, 2);
  }
  put(bigtiff ? 16 : 8, word);  // the first directory follows the header
  put(entries.size(), bigtiff ? 8 : 2);
  for (const RawEntry& e : entries) {
    put(e.tag, 2);
    put(e.type, 2);
    put(e.count, word);
    put(e.value, word);
  }
  put(next_dir, word);
  b.append(tail, '\0');
  return b;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

}  // namespace

TEST(SlideBadInput, TiffDirectoriesAreCheckedAgainstTheFileBeforeOpenSlideParsesThem) {
  // Regression (fuzz_slide, out-of-memory in CI): OpenSlide's own TIFF parser allocates
  // a tag's declared size before reading it, so a 5 KB file declaring a 3 GB value made
  // openslide_detect_vendor allocate 3 GB. Such files are now refused first, by us.
  const std::string dir = t::temp_dir("slide_layout");
  const RawEntry tile_w{322, 3, 1, 256}, tile_h{323, 3, 1, 256};
  auto refused = [&](const std::string& name, const std::string& bytes, const std::string& needle) {
    const std::string path = dir + "/" + name;
    write_bytes(path, bytes);
    try {
      slide::open_slide(path);
      ADD_FAILURE() << name << " was opened";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("corrupt TIFF structure"), std::string::npos) << name << ": " << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << name << ": " << msg;
      EXPECT_NE(msg.find(name), std::string::npos) << name << ": " << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << name << ": " << msg;
    }
  };
  // A tiled "Aperio" whose ImageDescription (tag 270, ASCII) declares 3e9 bytes.
  for (bool big : {false, true})
    for (bool be : {false, true})
      refused(std::string("huge_description_") + (big ? "big" : "classic") + (be ? "_be" : "_le") + ".svs",
              raw_tiff(big, be, {tile_w, tile_h, {270, 2, 3000000000ull, 8}}), "tag 270 declares 3000000000 values");
  // LONG8 count whose byte size overflows 64 bits.
  refused("overflow.tif", raw_tiff(true, false, {tile_w, {324, 16, uint64_t{1} << 61, 16}}), "tag 324 declares");
  // A value that fits the file's size but not at its offset: the file was cut short.
  refused("cut.svs", raw_tiff(false, false, {tile_w, tile_h, {270, 2, 40, 90}}), "offset 90, outside the file");
  // A directory chain that loops back to the first directory.
  refused("loop.tif", raw_tiff(false, true, {tile_w, tile_h}, 8), "loops");
  // A next-directory offset past the end.
  refused("past_end.tif", raw_tiff(false, false, {tile_w, tile_h}, 1u << 30), "lies outside the file");
  // A directory declaring more entries than the file holds.
  {
    std::string bytes = raw_tiff(false, false, {tile_w, tile_h});
    bytes[8] = '\xff';
    bytes[9] = '\x7f';
    refused("entries.tif", bytes, "declares 32767 entries");
  }

  // Well-formed files pass the check whatever their flavour: libtiff-written classic
  // and BigTIFF, little- and big-endian, with a long (out-of-line) description.
  for (const char* mode : {"w", "wb", "w8", "wb8"}) {
    const std::string path = dir + "/good_" + std::string(mode) + ".tif";
    TIFF* tif = new_tiff(path, mode, 64, 50, 1, 8, PHOTOMETRIC_MINISBLACK);  // last strip: 2 rows
    ASSERT_NE(tif, nullptr);
    TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 16u);
    TIFFSetField(tif, TIFFTAG_IMAGEDESCRIPTION, std::string(500, 'd').c_str());
    std::vector<uint8_t> row(64, 7);
    for (uint32_t y = 0; y < 50; ++y) {
      row[0] = static_cast<uint8_t>(y);
      ASSERT_EQ(TIFFWriteScanline(tif, row.data(), y, 0), 1);
    }
    TIFFClose(tif);
    std::unique_ptr<slide::SlideReader> r;
    ASSERT_NO_THROW(r = slide::open_slide(path)) << mode;
    EXPECT_EQ(r->info().levels.at(0).width, 64) << mode;
    EXPECT_EQ(r->read_region(0, cv::Rect(0, 0, 8, 8)).at<uint8_t>(3, 3), 7) << mode;
    const cv::Mat tail = r->read_region(0, cv::Rect(0, 44, 8, 8));  // across the short last strip
    EXPECT_EQ(tail.at<uint8_t>(5, 0), 49) << mode;
    EXPECT_EQ(tail.at<uint8_t>(5, 1), 7) << mode;
    EXPECT_EQ(tail.at<uint8_t>(6, 1), 0) << mode;  // past the image
  }
}

TEST(SlideBadInput, TilesAndStripsMustBeBackedByTheFileBeforeTheirBufferIsAllocated) {
  // Regression (fuzz_slide, out-of-memory): the libtiff reader allocated each tile
  // buffer at the declared tile size, 3.2 GB for a few-KB file.
  const std::string dir = t::temp_dir("slide_chunks");
  // The directory (10 entries) ends at 134, then 256 bytes of padding: data at 390.
  auto tiled = [](uint16_t compression, uint32_t tile, uint32_t stored) {
    return raw_tiff(false, false,
                    {{256, 4, 1, 100}, {257, 4, 1, 100}, {258, 3, 1, 8}, {259, 3, 1, compression}, {262, 3, 1, 1},
                     {277, 3, 1, 1}, {322, 4, 1, tile}, {323, 4, 1, tile}, {324, 4, 1, 390}, {325, 4, 1, stored}},
                    0, 256);
  };
  // (compression, declared byte count, what the file holds of it): 100 bytes follow the
  // 390-byte header, directory and padding.
  const struct {
    uint16_t compression;
    uint32_t declared, held;
  } cases[] = {{1, 100, 100}, {8, 100, 100}, {1, 4292870400u, 100}, {8, 4000000000u, 100}, {1, 60, 60}};
  for (const auto& c : cases) {
    const std::string path = dir + "/huge_tile_" + std::to_string(c.compression) + "_" + std::to_string(c.declared) + ".tif";
    write_bytes(path, tiled(c.compression, 65520, c.declared) + std::string(100, '\x01'));
    const auto r = slide::open_slide(path);
    try {
      r->read_region(0, cv::Rect(0, 0, 16, 16));
      ADD_FAILURE() << path << " was read";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("TIFF tile 0 declares 4292870400 decoded bytes but stores " +
                                           std::to_string(c.held)),
                std::string::npos)
          << e.what();
    }
  }
  // One uncompressed tile whose bytes are all there reads.
  const std::string ok = dir + "/small_tile.tif";
  write_bytes(ok, tiled(1, 112, 112 * 112) + std::string(112 * 112, '\x05'));
  EXPECT_EQ(slide::open_slide(ok)->read_region(0, cv::Rect(0, 0, 16, 16)).at<uint8_t>(2, 2), 5);
}

TEST(SlideBadInput, OpenSlideLevelsWithGiantTilesAreRefused) {
  // OpenSlide decodes a whole tile at its declared size; 16384 x 16384 is 1 GiB ARGB.
  const std::string path = t::temp_dir("slide_giant_tiles") + "/giant.svs";
  TIFF* tif = new_tiff(path, "w", 16384, 16384, 3, 8, PHOTOMETRIC_RGB);
  ASSERT_NE(tif, nullptr);
  TIFFSetField(tif, TIFFTAG_TILEWIDTH, 16384u);
  TIFFSetField(tif, TIFFTAG_TILELENGTH, 16384u);
  TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
  TIFFSetField(tif, TIFFTAG_IMAGEDESCRIPTION,
               "Aperio Image Library v10.0.0\n16384x16384 [0,0 16384x16384] (16384x16384) JPEG/RGB Q=70|AppMag = 20");
  // A few raw bytes stand for the tile: opening reads no pixels.
  uint8_t raw[16] = {0x78, 0x9c};
  ASSERT_EQ(TIFFWriteRawTile(tif, 0, raw, sizeof raw), static_cast<tmsize_t>(sizeof raw));
  TIFFClose(tif);
  try {
    slide::open_slide(path);
    ADD_FAILURE() << "opened";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("declares 16384 x 16384 pixel tiles"), std::string::npos) << e.what();
  }
}
