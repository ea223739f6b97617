// Readers and writers: every format round-trips to the same mask/image.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "nephroseg/core/error.h"
#include "nephroseg/io/coco.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/io/geojson.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/io/overlay.h"
#include "support/golden.h"

using namespace nephroseg;

namespace {

// A label image with awkward shapes: a ring (hole), diagonal-only contacts, a
// one-pixel object, objects touching the border, and two touching objects.
cv::Mat awkward_labels() {
  cv::Mat l = cv::Mat::zeros(41, 53, CV_32S);
  cv::circle(l, cv::Point(14, 14), 10, cv::Scalar(1), cv::FILLED);
  cv::circle(l, cv::Point(14, 14), 4, cv::Scalar(0), cv::FILLED);  // hole
  l.at<int>(14, 14) = 2;                                              // island in the hole
  // diagonal staircase
  for (int i = 0; i < 8; ++i) l.at<int>(30 + i, 5 + i) = 3;
  l.at<int>(0, 52) = 4;                                               // corner pixel
  cv::rectangle(l, cv::Rect(35, 20, 18, 21), cv::Scalar(5), cv::FILLED);  // touches right+bottom border
  cv::rectangle(l, cv::Rect(30, 20, 5, 10), cv::Scalar(6), cv::FILLED);   // touches object 5
  // checkerboard patch (many ambiguous vertices)
  for (int y = 2; y < 8; ++y)
    for (int x = 30; x < 40; ++x)
      if ((x + y) % 2 == 0) l.at<int>(y, x) = 7;
  return l;
}

bool same(const cv::Mat& a, const cv::Mat& b) {
  if (a.size() != b.size() || a.type() != b.type()) return false;
  return cv::countNonZero(a != b) == 0;
}

}  // namespace

TEST(Formats, MaskPngRoundTripAndReadingRule) {
  const std::string dir = test::temp_dir("fmt_png");
  cv::Mat m = cv::Mat::zeros(20, 30, CV_8U);
  cv::rectangle(m, cv::Rect(3, 4, 10, 7), cv::Scalar(1), cv::FILLED);
  io::write_mask_png(dir + "/m.png", m);
  cv::Mat back = io::read_mask(dir + "/m.png");
  EXPECT_TRUE(same(back, m * 255));
  // Red-on-black masks (the glomerulus set): default rule and channel 0 > 127.
  cv::Mat bgr(20, 30, CV_8UC3, cv::Scalar(0, 0, 0));
  bgr.setTo(cv::Scalar(0, 0, 255), m);  // OpenCV writes BGR: (0,0,255) is red
  cv::imwrite(dir + "/red.png", bgr);
  EXPECT_TRUE(same(io::read_mask(dir + "/red.png"), m * 255));
  io::MaskReadOptions red;
  red.channel = 0;
  EXPECT_TRUE(same(io::read_mask(dir + "/red.png", red), m * 255));
  io::MaskReadOptions blue;
  blue.channel = 2;
  EXPECT_EQ(cv::countNonZero(io::read_mask(dir + "/red.png", blue)), 0);
  io::MaskReadOptions bad;
  bad.channel = 5;
  EXPECT_THROW(io::read_mask(dir + "/red.png", bad), Error);
  EXPECT_THROW(io::read_mask(dir + "/absent.png"), Error);
  std::ofstream(dir + "/garbage.png") << "not a png";
  EXPECT_THROW(io::read_mask(dir + "/garbage.png"), Error);
}

TEST(Formats, ReadsRealGlomerulusMask) {
  NEPHRO_REQUIRE_SHARED("data/glomeruli/masks/10003.png");
  const cv::Mat m = io::read_mask(test::shared_path("data/glomeruli/masks/10003.png"));
  EXPECT_EQ(m.size(), cv::Size(1024, 1024));
  EXPECT_EQ(cv::countNonZero(m), 91991);  // from the data README
  const cv::Mat rgb = io::read_image_rgb(test::shared_path("data/glomeruli/images/10003.png"));
  EXPECT_EQ(rgb.type(), CV_8UC3);
}

TEST(Formats, Tiff16BitWindowAndMultichannel) {
  const std::string dir = test::temp_dir("fmt_tiff");
  // 16-bit grey ramp 1000..50000 with a few outliers.
  cv::Mat g(50, 200, CV_16U);
  for (int y = 0; y < g.rows; ++y)
    for (int x = 0; x < g.cols; ++x) g.at<uint16_t>(y, x) = static_cast<uint16_t>(1000 + x * 245);
  g.at<uint16_t>(0, 0) = 65535;
  io::write_tiff(dir + "/g16.tif", {g});
  cv::Mat raw = io::read_image_raw(dir + "/g16.tif");
  EXPECT_EQ(raw.type(), CV_16UC1);
  EXPECT_TRUE(same(raw, g));
  cv::Mat rgb = io::read_image_rgb(dir + "/g16.tif");  // percentile window
  EXPECT_EQ(rgb.type(), CV_8UC3);
  EXPECT_LE(rgb.at<cv::Vec3b>(10, 0)[0], 2);
  EXPECT_GE(rgb.at<cv::Vec3b>(10, 199)[0], 253);
  EXPECT_NEAR(rgb.at<cv::Vec3b>(10, 100)[0], 128, 4);
  io::ImageReadOptions mm;
  mm.window = io::WindowMode::kMinMax;
  mm.window_min = 0;
  mm.window_max = 65535;
  EXPECT_NEAR(io::read_image_rgb(dir + "/g16.tif", mm).at<cv::Vec3b>(10, 100)[1], (1000 + 100 * 245) * 255.0 / 65535, 1);
  // Three single-channel 16-bit pages = an IF stack; pick channels 2,0 -> R,G.
  std::vector<cv::Mat> pages;
  for (int c = 0; c < 3; ++c) pages.push_back(cv::Mat(10, 12, CV_16U, cv::Scalar(1000 * (c + 1))));
  pages[2](cv::Rect(0, 0, 6, 10)) = 9000;
  io::write_tiff(dir + "/stack.tif", pages);
  EXPECT_EQ(io::count_pages(dir + "/stack.tif"), 3);
  EXPECT_EQ(io::read_image_raw(dir + "/stack.tif", 1).at<uint16_t>(0, 0), 2000);
  io::ImageReadOptions stack;
  stack.pages_as_channels = true;
  stack.channels = {2, 0, -1};
  cv::Mat s = io::read_image_rgb(dir + "/stack.tif", stack);
  EXPECT_EQ(s.at<cv::Vec3b>(0, 0)[0], 255);   // channel 2 high part
  EXPECT_EQ(s.at<cv::Vec3b>(0, 11)[0], 0);    // channel 2 low part
  EXPECT_EQ(s.at<cv::Vec3b>(0, 0)[2], 0);     // blue unused
  EXPECT_THROW(io::read_image_raw(dir + "/stack.tif", 3), Error);
  stack.channels = {4};
  EXPECT_THROW(io::read_image_rgb(dir + "/stack.tif", stack), Error);
  // 8-bit RGB TIFF keeps RGB order; PNG via OpenCV too.
  cv::Mat c(5, 6, CV_8UC3, cv::Scalar(10, 20, 30));
  io::write_tiff(dir + "/rgb.tif", {c});
  EXPECT_EQ(io::read_image_rgb(dir + "/rgb.tif").at<cv::Vec3b>(2, 2), cv::Vec3b(10, 20, 30));
  io::write_png(dir + "/rgb.png", c);
  EXPECT_EQ(io::read_image_rgb(dir + "/rgb.png").at<cv::Vec3b>(2, 2), cv::Vec3b(10, 20, 30));
}

TEST(Formats, LabelTiffRoundTrip16And32Bit) {
  const std::string dir = test::temp_dir("fmt_label");
  cv::Mat l = awkward_labels();
  io::write_label_tiff(dir + "/l16.tif", l, 16);
  EXPECT_TRUE(same(io::read_label_image(dir + "/l16.tif"), l));
  cv::Mat big = l.clone();
  big.setTo(100000, l == 5);
  EXPECT_THROW(io::write_label_tiff(dir + "/bad.tif", big, 16), Error);
  EXPECT_FALSE(std::filesystem::exists(dir + "/bad.tif"));
  io::write_label_tiff(dir + "/l32.tif", big, 32);
  EXPECT_TRUE(same(io::read_label_image(dir + "/l32.tif"), big));
}

TEST(Formats, GeoJsonRoundTripKeepsHolesAndDiagonals) {
  const std::string dir = test::temp_dir("fmt_geojson");
  const cv::Mat l = awkward_labels();
  io::GeoJsonOptions opt;
  opt.class_name = "Glomerulus";
  opt.color = {10, 200, 30};
  io::write_geojson(dir + "/o.geojson", l, opt, {{1, {{"thickness nm", 321.5}}}});
  const auto objects = io::read_geojson(dir + "/o.geojson");
  ASSERT_EQ(objects.size(), 7u);
  EXPECT_TRUE(same(io::rasterize_objects(objects, l.size()), l));
  // The ring has one exterior and one hole; class/colour/measurements survive.
  EXPECT_EQ(objects[0].polygons.size(), 1u);
  EXPECT_EQ(objects[0].polygons[0].size(), 2u);
  EXPECT_EQ(objects[0].class_name, "Glomerulus");
  EXPECT_EQ(objects[0].color.g, 200);
  bool found = false;
  for (const auto& [k, v] : objects[0].measurements)
    if (k == "thickness nm") found = std::abs(v - 321.5) < 1e-9;
  EXPECT_TRUE(found);
  // QuPath-specific fields present in the text.
  std::ifstream in(dir + "/o.geojson");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"objectType\": \"annotation\""), std::string::npos);
  EXPECT_NE(text.find("\"FeatureCollection\""), std::string::npos);
  // Random blobs.
  cv::RNG rng(3);
  for (int trial = 0; trial < 5; ++trial) {
    cv::Mat noise(64, 80, CV_8U);
    rng.fill(noise, cv::RNG::UNIFORM, 0, 255);
    cv::GaussianBlur(noise, noise, cv::Size(0, 0), 2.0);
    cv::Mat labels = io::label_instances(noise > 128, 8);
    io::write_geojson(dir + "/r.geojson", labels);
    EXPECT_TRUE(same(io::rasterize_objects(io::read_geojson(dir + "/r.geojson"), labels.size()), labels))
        << "trial " << trial;
  }
}

TEST(Formats, CocoRleMatchesKnownEncodingAndRoundTrips) {
  // 3x4 mask, column-major: column 0 = 0,1,1; column 1 = 1,0,0; columns 2,3 = 0.
  cv::Mat m = cv::Mat::zeros(3, 4, CV_8U);
  m.at<uint8_t>(1, 0) = m.at<uint8_t>(2, 0) = m.at<uint8_t>(0, 1) = 255;
  const io::CocoRle rle = io::rle_encode(m);
  EXPECT_EQ(rle.counts, (std::vector<uint32_t>{1, 3, 8}));
  EXPECT_TRUE(same(io::rle_decode(rle), m));
  cv::Mat full(2, 2, CV_8U, cv::Scalar(1));
  EXPECT_EQ(io::rle_encode(full).counts, (std::vector<uint32_t>{0, 4}));
  // Compressed strings (pycocotools' rleToString): small counts are one character
  // each; "1,3,8" -> '1' '3' '8' shifted by 48 (deltas start at the 4th count).
  EXPECT_EQ(io::rle_counts_to_string({1, 3, 8}), "138");
  const std::vector<uint32_t> counts = {0, 4, 100, 37, 5000, 3, 1, 70000, 2};
  EXPECT_EQ(io::rle_counts_from_string(io::rle_counts_to_string(counts)), counts);
  const std::string dir = test::temp_dir("fmt_coco");
  const cv::Mat l = awkward_labels();
  for (bool compressed : {false, true}) {
    io::CocoWriteOptions opt;
    opt.compressed = compressed;
    io::write_coco(dir + "/c.json", {{"a.png", l}, {"b.png", cv::Mat::zeros(5, 5, CV_32S)}}, opt);
    const auto images = io::read_coco(dir + "/c.json");
    ASSERT_EQ(images.size(), 2u);
    EXPECT_EQ(images[0].file_name, "a.png");
    EXPECT_TRUE(same(images[0].labels, l)) << "compressed " << compressed;
    EXPECT_EQ(cv::countNonZero(images[1].labels), 0);
  }
  io::CocoRle broken = rle;
  broken.counts.push_back(3);
  EXPECT_THROW(io::rle_decode(broken), Error);
}

TEST(Formats, CsvQuotingRoundTrip) {
  const std::string dir = test::temp_dir("fmt_csv");
  const io::CsvRow header = {"name", "value", "note"};
  const std::vector<io::CsvRow> rows = {{"a,b", "1.5", "say \"hi\""},
                                        {"line\nbreak", "NaN", " padded "},
                                        {"", "", "plain"}};
  io::write_csv(dir + "/t.csv", header, rows);
  const auto back = io::read_csv(dir + "/t.csv");
  ASSERT_EQ(back.size(), 4u);
  EXPECT_EQ(back[0], header);
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(back[i + 1], rows[i]);
  EXPECT_EQ(io::csv_escape("x\"y"), "\"x\"\"y\"");
  EXPECT_EQ(io::format_number(0.1), "0.1");
  EXPECT_EQ(io::format_number(std::nan("")), "NaN");
  EXPECT_THROW(io::write_csv(dir + "/bad.csv", header, {{"only one"}}), Error);
  EXPECT_FALSE(std::filesystem::exists(dir + "/bad.csv"));
}

TEST(Formats, OverlayHelpersDraw) {
  cv::Mat mask = cv::Mat::zeros(40, 40, CV_8U);
  cv::circle(mask, cv::Point(20, 20), 8, cv::Scalar(255), cv::FILLED);
  cv::Mat o = io::overlay_mask(cv::Mat(), mask, io::colors::kRed, 0.5, 1);
  EXPECT_EQ(o.type(), CV_8UC3);
  EXPECT_GT(o.at<cv::Vec3b>(20, 20)[0], 100);  // red tint, RGB order
  EXPECT_EQ(o.at<cv::Vec3b>(20, 20)[2], o.at<cv::Vec3b>(20, 20)[2]);
  EXPECT_EQ(o.at<cv::Vec3b>(2, 2), cv::Vec3b(0, 0, 0));
  io::draw_points(o, {{5, 5}, {30, 30}}, {"+", "-"}, io::colors::kGreen, 2);
  EXPECT_EQ(o.at<cv::Vec3b>(5, 5)[1], io::colors::kGreen.g);
  EXPECT_THROW(io::draw_points(o, {{5, 5}}, {"a", "b"}), Error);
  EXPECT_EQ(io::base64_encode("Man"), "TWFu");
  EXPECT_EQ(io::base64_encode("Ma"), "TWE=");
  EXPECT_EQ(io::base64_encode("M"), "TQ==");
}
