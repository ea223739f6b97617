// `nephroseg measure --nm-per-pixel auto` (the default): the pixel size read from the
// file, its source in the outputs, explicit values, and the errors.
#include <gtest/gtest.h>

#include <tiffio.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>

#include "nephroseg/io/csv.h"
#include "nephroseg/measure/phantom.h"
#include "support/golden.h"

using namespace nephroseg;

namespace {

// An 8-bit mask TIFF with XResolution/YResolution in pixels per centimetre.
void write_calibrated_tiff(const std::string& path, const cv::Mat& mask, double nm_per_pixel) {
  TIFF* tif = TIFFOpen(path.c_str(), "w");
  ASSERT_NE(tif, nullptr);
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(mask.cols));
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(mask.rows));
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1);
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
  TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, static_cast<uint32_t>(mask.rows));
  TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
  TIFFSetField(tif, TIFFTAG_XRESOLUTION, static_cast<float>(1e7 / nm_per_pixel));
  TIFFSetField(tif, TIFFTAG_YRESOLUTION, static_cast<float>(1e7 / nm_per_pixel));
  for (int y = 0; y < mask.rows; ++y) TIFFWriteScanline(tif, const_cast<uint8_t*>(mask.ptr<uint8_t>(y)), y, 0);
  TIFFClose(tif);
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

struct Fixture {
  std::string dir, tif, png;
  double true_nm = 0;
};

Fixture make_masks(const std::string& tag) {
  measure::PhantomOptions po;
  po.seed = 3;
  po.size = 192;
  po.thickness_px = 12;
  const measure::Phantom ph = measure::generate_phantom(po);
  cv::Mat mask = ph.mask > 0;
  Fixture f;
  f.dir = test::temp_dir(tag);
  f.tif = f.dir + "/cal.tif";
  f.png = f.dir + "/plain.png";
  write_calibrated_tiff(f.tif, mask, 2.5);
  cv::imwrite(f.png, mask);
  f.true_nm = ph.true_thickness_px * 2.5;
  return f;
}

#define REQUIRE_CLI() \
  if (!test::have_cli()) GTEST_SKIP() << "needs the nephroseg CLI (build target nephroseg_cli)"

}  // namespace

TEST(MeasureCalibration, AutoReadsTheFileAndRecordsTheSource) {
  REQUIRE_CLI();
  const Fixture f = make_masks("measure_cal_auto");
  const std::string out = f.dir + "/out";
  const test::CliRun r = test::run_cli("measure --mask " + f.tif + " --out " + out);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output.find("warning"), std::string::npos) << r.output;
  const auto j = read_json(out + "/cal_summary.json");
  EXPECT_NEAR(j["nm_per_pixel"].get<double>(), 2.5, 1e-5);
  EXPECT_EQ(j["calibration"]["source"], "tiff-resolution");
  EXPECT_EQ(j["calibration"]["file"], f.tif);
  // The phantom's true thickness, from the file's calibration alone (within 5 %).
  EXPECT_NEAR(j["direct"]["arithmetic_mean_nm"].get<double>(), f.true_nm, 0.05 * f.true_nm);
  const auto rows = io::read_csv(out + "/summary.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0][0], "name");
  EXPECT_EQ(rows[0][1], "nm_per_pixel");  // existing columns keep their place
  EXPECT_EQ(rows[0].back(), "calibration_source");
  EXPECT_EQ(rows[1].back(), "tiff-resolution");
  EXPECT_EQ(read_json(out + "/summary.json")["images"][0]["calibration_source"], "tiff-resolution");
}

TEST(MeasureCalibration, ExplicitValueOverridesWithAWarning) {
  REQUIRE_CLI();
  const Fixture f = make_masks("measure_cal_explicit");
  const test::CliRun r = test::run_cli("measure --mask " + f.tif + " --nm-per-pixel 3 --out " + f.dir + "/o");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("warning: --nm-per-pixel 3 disagrees with the calibration"), std::string::npos) << r.output;
  const auto j = read_json(f.dir + "/o/cal_summary.json");
  EXPECT_DOUBLE_EQ(j["nm_per_pixel"].get<double>(), 3.0);
  EXPECT_EQ(j["calibration"]["source"], "option");
  EXPECT_NEAR(j["calibration"]["file_nm_per_pixel"].get<double>(), 2.5, 1e-5);
  // Within 1 %: no warning.
  const test::CliRun quiet = test::run_cli("measure --mask " + f.tif + " --nm-per-pixel 2.51 --out " + f.dir + "/q");
  ASSERT_EQ(quiet.code, 0) << quiet.output;
  EXPECT_EQ(quiet.output.find("warning"), std::string::npos) << quiet.output;
  // A PNG has no calibration: the explicit value is used, silently.
  const test::CliRun png = test::run_cli("measure --mask " + f.png + " --nm-per-pixel 2.5 --out " + f.dir + "/p");
  ASSERT_EQ(png.code, 0) << png.output;
  EXPECT_EQ(read_json(f.dir + "/p/plain_summary.json")["calibration"]["file_source"], "none");
}

TEST(MeasureCalibration, ClearErrors) {
  REQUIRE_CLI();
  const Fixture f = make_masks("measure_cal_errors");
  const test::CliRun none = test::run_cli("measure --mask " + f.png + " --out " + f.dir + "/n");
  EXPECT_EQ(none.code, 1) << none.output;
  EXPECT_NE(none.output.find("error: no pixel size for '" + f.png + "'"), std::string::npos) << none.output;
  EXPECT_FALSE(std::filesystem::exists(f.dir + "/n/summary.csv"));
  for (const std::string bad : {"nan", "inf", "0", "-2", "abc", "2.5nm"}) {
    const test::CliRun r = test::run_cli("measure --mask " + f.tif + " --nm-per-pixel " + bad + " --out " + f.dir + "/b");
    EXPECT_EQ(r.code, 1) << bad << ": " << r.output;
    EXPECT_NE(r.output.find("error: --nm-per-pixel must be 'auto' or a positive, finite number"), std::string::npos)
        << bad << ": " << r.output;
    EXPECT_NE(r.output.find("'" + bad + "'"), std::string::npos) << r.output;
  }
}

TEST(MeasureCalibration, DmImageGivesTheCalibration) {
  REQUIRE_CLI();
  NEPHRO_REQUIRE_SHARED("data/dm/test_STEM_image.dm3");
  const std::string dir = test::temp_dir("measure_cal_dm");
  cv::Mat mask = cv::Mat::zeros(68, 68, CV_8U);
  mask(cv::Rect(0, 24, 68, 20)).setTo(255);
  cv::imwrite(dir + "/test_STEM_image.png", mask);
  const test::CliRun r = test::run_cli("measure --mask " + dir + "/test_STEM_image.png --image " +
                                       test::shared_path("data/dm/test_STEM_image.dm3") + " --out " + dir + "/o");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto j = read_json(dir + "/o/test_STEM_image_summary.json");
  EXPECT_NEAR(j["nm_per_pixel"].get<double>(), 0.2485380, 1e-6);
  EXPECT_EQ(j["calibration"]["source"], "dm");
  EXPECT_EQ(j["calibration"]["file_unit"], "nm");
}
