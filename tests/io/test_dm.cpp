// DigitalMicrograph DM3/DM4 reader: agreement with an independent reader (HyperSpy's
// values in ../shared/data/dm/expected_hyperspy.json) and hostile files written here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "nephroseg/core/error.h"
#include "nephroseg/io/calibration.h"
#include "nephroseg/io/dm.h"
#include "nephroseg/io/image.h"
#include "support/calibrated_files.h"
#include "support/golden.h"

using namespace nephroseg;

namespace {

using test::DmWriter;  // tests/support/calibrated_files.h

struct Synthetic {
  bool dm4 = true;
  uint32_t width = 3, height = 2;
  int data_type = 10;          // uint16
  uint64_t declared_count = 0;  // 0: width * height
  bool third_dim = false;
  std::u16string unit = u"\u00B5m";
  float scale = 0.0025f;       // 2.5 nm
  float magnification = 20000;
};

std::string make_dm(const Synthetic& s) {
  DmWriter w;
  w.dm4 = s.dm4;
  w.begin(1);  // root: ImageList
  w.group("ImageList", 1);
  w.group("", 2);  // the one image: ImageData, ImageTags
  w.group("ImageData", 4);
  w.group("Calibrations", 1);
  w.group("Dimension", 2);
  for (int k = 0; k < 2; ++k) {
    w.group("", 3);
    w.f32("Origin", 0);
    w.f32("Scale", s.scale);
    w.text("Units", s.unit);
  }
  const uint64_t n = static_cast<uint64_t>(s.width) * s.height;
  w.data_header("Data", {20, 4, s.declared_count ? s.declared_count : n});
  const uint64_t written = s.declared_count ? std::min(s.declared_count, n) : n;
  for (uint64_t i = 0; i < written; ++i) w.le(100 + i, 2);
  w.u32("DataType", static_cast<uint32_t>(s.data_type));
  w.group("Dimensions", s.third_dim ? 3 : 2);
  w.u32("", s.width);
  w.u32("", s.height);
  if (s.third_dim) w.u32("", 1);
  w.group("ImageTags", 1);
  w.group("Microscope Info", 1);
  w.f32("Indicated Magnification", s.magnification);
  w.out += std::string(8, '\0');
  return w.out;
}

std::string write_file(const std::string& dir, const std::string& name, const std::string& bytes) {
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

using nephroseg::test::error_of;  // tests/support/golden.h

}  // namespace

TEST(Dm, AgreesWithHyperSpyOnEveryFile) {
  NEPHRO_REQUIRE_SHARED("data/dm/expected_hyperspy.json");
  const std::string dir = test::shared_path("data/dm");
  std::ifstream in(dir + "/expected_hyperspy.json");
  const nlohmann::json expected = nlohmann::json::parse(in);
  int accepted = 0, refused = 0;
  for (const auto& [file, e] : expected.items()) {
    SCOPED_TRACE(file);
    const std::string path = dir + "/" + file;
    const std::string dtype = e["dtype"];
    if (dtype.rfind("complex", 0) == 0 || dtype == "bool") {
      const std::string msg = error_of([&] { io::read_dm(path); });
      EXPECT_NE(msg.find(dtype == "bool" ? "bool" : "complex"), std::string::npos) << msg;
      EXPECT_NE(msg.find(file), std::string::npos) << msg;
      ++refused;
      continue;
    }
    const io::DmImage im = io::read_dm(path);
    ++accepted;
    EXPECT_EQ(io::dm_data_type_name(im.data_type), dtype);
    ASSERT_EQ(im.height, e["shape"][0].get<int>());
    ASSERT_EQ(im.width, e["shape"][1].get<int>());
    EXPECT_EQ(im.pixels.rows, im.height);
    EXPECT_EQ(im.pixels.cols, im.width);
    // HyperSpy lists the axes y, x.
    EXPECT_NEAR(im.y.scale, e["scale"][0].get<double>(), 1e-7);
    EXPECT_NEAR(im.x.scale, e["scale"][1].get<double>(), 1e-7);
    EXPECT_EQ(im.y.units, e["units"][0].get<std::string>());
    EXPECT_EQ(im.x.units, e["units"][1].get<std::string>());
    cv::Mat values;
    im.pixels.convertTo(values, CV_64F);
    if (e.contains("values")) {
      for (int y = 0; y < im.height; ++y)
        for (int x = 0; x < im.width; ++x) {
          const auto& v = e["values"][y][x];
          if (dtype == "rgba8") {
            for (int c = 0; c < 4; ++c)
              EXPECT_EQ(values.ptr<double>(y)[x * 4 + c], v[c].get<double>()) << "pixel " << x << "," << y << " c" << c;
          } else {
            EXPECT_EQ(values.at<double>(y, x), v.get<double>()) << "pixel " << x << "," << y;
          }
        }
    } else {
      double lo = 0, hi = 0;
      cv::minMaxLoc(values, &lo, &hi);
      EXPECT_EQ(cv::sum(values)[0], e["sum"].get<double>());
      EXPECT_EQ(lo, e["min"].get<double>());
      EXPECT_EQ(hi, e["max"].get<double>());
      for (int x = 0; x < 5; ++x) EXPECT_EQ(values.at<double>(0, x), e["first_row_first_5"][x].get<double>());
    }
  }
  EXPECT_EQ(accepted, 21);
  EXPECT_EQ(refused, 8);
}

TEST(Dm, ReadThroughTheImageLayerAndCalibration) {
  NEPHRO_REQUIRE_SHARED("data/dm/test_STEM_image.dm3");
  const std::string stem = test::shared_path("data/dm/test_STEM_image.dm3");
  EXPECT_TRUE(io::is_image_file(stem));
  EXPECT_TRUE(io::is_image_file("a/B.DM4"));
  EXPECT_EQ(io::image_format(stem), "dm3");
  const cv::Mat raw = io::read_image_raw(stem);
  EXPECT_EQ(raw.type(), CV_32FC1);  // uint32 -> float for the 8-bit rule
  EXPECT_EQ(raw.at<float>(0, 0), 33121.0f);
  const cv::Mat rgb = io::read_image_rgb(stem);
  EXPECT_EQ(rgb.type(), CV_8UC3);
  EXPECT_EQ(rgb.size(), cv::Size(68, 68));
  const io::Calibration c = io::read_calibration(stem);
  EXPECT_EQ(c.source, io::CalibrationSource::kDm);
  EXPECT_NEAR(c.nm_per_pixel_x, 0.2485380, 1e-6);
  EXPECT_NEAR(c.nm_per_pixel_y, 0.2485380, 1e-6);
  EXPECT_EQ(c.unit, "nm");
  EXPECT_NEAR(io::require_nm_per_pixel(c, stem), 0.2485380, 1e-6);
  // An uncalibrated DM file: no pixel size.
  const io::Calibration none = io::read_calibration(test::shared_path("data/dm/test-10.dm4"));
  EXPECT_FALSE(none.known());
  EXPECT_EQ(none.source, io::CalibrationSource::kNone);
  EXPECT_NE(error_of([&] { io::require_nm_per_pixel(none, "x.dm4"); }).find("no pixel size"), std::string::npos);
  // uint8 DM stays 8-bit; RGBA stays 4 channels.
  EXPECT_EQ(io::read_image_raw(test::shared_path("data/dm/test-6.dm3")).type(), CV_8UC1);
  EXPECT_EQ(io::read_image_raw(test::shared_path("data/dm/test-23.dm4")).type(), CV_8UC4);
}

TEST(Dm, SyntheticFileWithCalibrationAndMagnification) {
  const std::string dir = test::temp_dir("dm_synth");
  for (bool dm4 : {false, true}) {
    SCOPED_TRACE(dm4 ? "dm4" : "dm3");
    Synthetic s;
    s.dm4 = dm4;
    const std::string path = write_file(dir, dm4 ? "a.dm4" : "a.dm3", make_dm(s));
    const io::DmImage im = io::read_dm(path);
    EXPECT_EQ(im.version, dm4 ? 4 : 3);
    EXPECT_EQ(im.width, 3);
    EXPECT_EQ(im.height, 2);
    EXPECT_EQ(im.pixels.type(), CV_16UC1);
    EXPECT_EQ(im.pixels.at<uint16_t>(1, 2), 105);
    EXPECT_EQ(im.x.units, "\xC2\xB5m");
    EXPECT_FLOAT_EQ(static_cast<float>(im.magnification), 20000.f);
    const io::Calibration c = io::read_calibration(path);
    EXPECT_EQ(c.source, io::CalibrationSource::kDm);
    EXPECT_NEAR(c.nm_per_pixel_x, 2.5, 1e-4);
    EXPECT_NEAR(c.nm_per_pixel_y, 2.5, 1e-4);
    EXPECT_FLOAT_EQ(static_cast<float>(c.magnification), 20000.f);
  }
  // Ångström and reciprocal units.
  Synthetic a;
  a.unit = u"\u00C5";
  a.scale = 2.0f;
  EXPECT_NEAR(io::read_calibration(write_file(dir, "ang.dm4", make_dm(a))).nm_per_pixel_x, 0.2, 1e-6);
  Synthetic r;
  r.unit = u"1/nm";
  const std::string rp = write_file(dir, "fft.dm4", make_dm(r));
  const io::Calibration rc = io::read_calibration(rp);
  EXPECT_TRUE(rc.reciprocal);
  EXPECT_FALSE(rc.known());
  EXPECT_NE(error_of([&] { io::require_nm_per_pixel(rc, rp); }).find("reciprocal"), std::string::npos);
}

TEST(Dm, HostileFilesGiveOneClearError) {
  const std::string dir = test::temp_dir("dm_hostile");
  const std::string good = make_dm(Synthetic{});
  // Every truncation of a valid file: an Error, never a crash.
  int errors = 0;
  for (size_t n = 0; n + 8 < good.size(); ++n) {
    const std::string msg = error_of([&] { io::read_dm_bytes(good.substr(0, n), "cut.dm4"); });
    EXPECT_FALSE(msg.empty()) << "prefix " << n << " was accepted";
    if (!msg.empty()) ++errors;
    EXPECT_NE(msg.find("cut.dm4"), std::string::npos) << msg;
  }
  EXPECT_GT(errors, 100);
  // Absurd dimensions: 2^31 x 2^31 (data declared small).
  Synthetic huge;
  huge.width = 1u << 31;
  huge.height = 1u << 31;
  huge.declared_count = 6;
  std::string msg = error_of([&] { io::read_dm(write_file(dir, "huge.dm4", make_dm(huge))); });
  EXPECT_NE(msg.find("limit"), std::string::npos) << msg;
  EXPECT_NE(msg.find("huge.dm4"), std::string::npos) << msg;
  // A data array that claims 2^60 elements (points far outside the file).
  Synthetic far;
  far.declared_count = 1ull << 60;
  msg = error_of([&] { io::read_dm(write_file(dir, "far.dm4", make_dm(far))); });
  EXPECT_NE(msg.find("past the end"), std::string::npos) << msg;
  // ... and 2^63 elements of 2 bytes: the size overflows.
  far.declared_count = 1ull << 63;
  msg = error_of([&] { io::read_dm(write_file(dir, "overflow.dm4", make_dm(far))); });
  EXPECT_NE(msg.find("overflow"), std::string::npos) << msg;
  // Data shorter than the dimensions: a 3 x 2 file whose width is patched to 9.
  std::string bytes = good;
  const size_t dims = bytes.rfind("Dimensions");
  ASSERT_NE(dims, std::string::npos);
  // the first u32 after "Dimensions": label, 8-byte size, sorted/open, 8-byte count, then
  // tag kind(1) + label length(2) + size(8) + "%%%%" + ninfo(8) + info(8) = 31 bytes.
  const size_t first = dims + 10 + 8 + 2 + 8 + 31;
  bytes[first] = 9;  // width 9
  msg = error_of([&] { io::read_dm_bytes(bytes, "short.dm4"); });
  EXPECT_NE(msg.find("needs"), std::string::npos) << msg;
  // A root group that claims 2^32 + 1 tags.
  std::string many = good;
  const size_t root_count = 4 + 8 + 4 + 2;
  many[root_count + 3] = 1;  // 8-byte big-endian count: 2^32 + 1
  msg = error_of([&] { io::read_dm_bytes(many, "many.dm4"); });
  EXPECT_NE(msg.find("more than the file can hold"), std::string::npos) << msg;
  // 3-D stacks and 1-D signals are refused clearly.
  Synthetic stack;
  stack.third_dim = true;
  msg = error_of([&] { io::read_dm(write_file(dir, "stack.dm4", make_dm(stack))); });
  EXPECT_NE(msg.find("3-D stack"), std::string::npos) << msg;
  // Not a DM file at all.
  msg = error_of([&] { io::read_dm_bytes(std::string(64, 'x'), "junk.dm3"); });
  EXPECT_NE(msg.find("not a DigitalMicrograph file"), std::string::npos) << msg;
  // Deep nesting is bounded.
  DmWriter deep;
  deep.be(4, 4);
  deep.be(0, 8);
  deep.be(1, 4);
  deep.out += std::string("\0\0", 2);
  deep.count(1);
  for (int i = 0; i < 200; ++i) deep.group("g", 1);
  msg = error_of([&] { io::read_dm_bytes(deep.out, "deep.dm4"); });
  EXPECT_NE(msg.find("nested deeper"), std::string::npos) << msg;
}

TEST(Dm, DataTypeOutOfIntRangeIsAnErrorNotUndefinedBehaviour) {
  // Regression (fuzz_dm, UBSan): ImageData.DataType 4.1e9 was cast to int unchecked.
  for (uint32_t code : {4000000000u, 2147483648u, 70000u}) {
    Synthetic s;
    s.data_type = static_cast<int>(code);  // written back as the same uint32
    const std::string msg = error_of([&] { io::read_dm_bytes(make_dm(s), "type.dm4"); });
    EXPECT_NE(msg.find("is not a DigitalMicrograph data type code"), std::string::npos) << code << ": " << msg;
    EXPECT_NE(msg.find("type.dm4"), std::string::npos) << msg;
  }
}
