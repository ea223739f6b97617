// Calibrated TIFFs written here with libtiff (resolution tags in cm and inch, ImageJ
// and OME-XML descriptions) and read back by io::read_calibration; the unit table.
#include <gtest/gtest.h>

#include <tiffio.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>

#include "nephroseg/core/error.h"
#include "nephroseg/io/calibration.h"
#include "nephroseg/io/image.h"
#include "support/golden.h"

using namespace nephroseg;

namespace {

struct TiffTags {
  float xres = 0, yres = 0;  // 0: not written
  int unit = 0;              // 0: not written
  std::string description;
};

std::string write_tiff(const std::string& dir, const std::string& name, const TiffTags& t) {
  const std::string path = dir + "/" + name;
  TIFF* tif = TIFFOpen(path.c_str(), "w");
  EXPECT_NE(tif, nullptr);
  const uint32_t w = 8, h = 4;
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, w);
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, h);
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 16);
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1);
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, h);
  if (t.xres > 0) TIFFSetField(tif, TIFFTAG_XRESOLUTION, t.xres);
  if (t.yres > 0) TIFFSetField(tif, TIFFTAG_YRESOLUTION, t.yres);
  if (t.unit > 0) TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, static_cast<uint16_t>(t.unit));
  if (!t.description.empty()) TIFFSetField(tif, TIFFTAG_IMAGEDESCRIPTION, t.description.c_str());
  std::vector<uint16_t> row(w);
  for (uint32_t y = 0; y < h; ++y) {
    for (uint32_t x = 0; x < w; ++x) row[x] = static_cast<uint16_t>(1000 * y + x);
    TIFFWriteScanline(tif, row.data(), y, 0);
  }
  TIFFClose(tif);
  return path;
}

}  // namespace

TEST(Calibration, UnitTable) {
  EXPECT_EQ(io::nm_per_unit("nm"), 1);
  EXPECT_EQ(io::nm_per_unit("\xC2\xB5m"), 1000);  // µm, micro sign
  EXPECT_EQ(io::nm_per_unit("\xCE\xBCm"), 1000);  // μm, Greek mu
  EXPECT_EQ(io::nm_per_unit("um"), 1000);
  EXPECT_EQ(io::nm_per_unit("micron"), 1000);
  EXPECT_EQ(io::nm_per_unit("\xC3\x85"), 0.1);    // Å
  EXPECT_EQ(io::nm_per_unit("A"), 0.1);
  EXPECT_EQ(io::nm_per_unit("mm"), 1e6);
  EXPECT_EQ(io::nm_per_unit("1/nm"), -1);
  EXPECT_EQ(io::nm_per_unit("nm^-1"), -1);
  EXPECT_EQ(io::nm_per_unit(""), 0);
  EXPECT_EQ(io::nm_per_unit("pixel"), 0);
  EXPECT_EQ(io::calibration_source_names().name(io::CalibrationSource::kTiffResolution), "tiff-resolution");
}

TEST(Calibration, TiffResolutionTagsInCmAndInch) {
  const std::string dir = test::temp_dir("cal_tiff");
  // 400 pixels per cm -> 1e7 / 400 = 25000 nm per pixel; y differs on purpose.
  io::Calibration c = io::read_calibration(write_tiff(dir, "cm.tif", {400, 200, RESUNIT_CENTIMETER, ""}));
  EXPECT_EQ(c.source, io::CalibrationSource::kTiffResolution);
  EXPECT_NEAR(c.nm_per_pixel_x, 25000, 1e-6);
  EXPECT_NEAR(c.nm_per_pixel_y, 50000, 1e-6);
  EXPECT_EQ(c.unit, "cm");
  // 2540 pixels per inch -> 25.4e6 / 2540 = 10000 nm.
  c = io::read_calibration(write_tiff(dir, "inch.tif", {2540, 2540, RESUNIT_INCH, ""}));
  EXPECT_EQ(c.source, io::CalibrationSource::kTiffResolution);
  EXPECT_NEAR(c.nm_per_pixel_x, 10000, 1e-6);
  EXPECT_NEAR(io::require_nm_per_pixel(c, "inch.tif"), 10000, 1e-6);
  // 72 dpi is an editor's default, not a calibration; unit "none" is no unit.
  EXPECT_FALSE(io::read_calibration(write_tiff(dir, "72.tif", {72, 72, RESUNIT_INCH, ""})).known());
  EXPECT_FALSE(io::read_calibration(write_tiff(dir, "none.tif", {5, 5, RESUNIT_NONE, ""})).known());
  EXPECT_FALSE(io::read_calibration(write_tiff(dir, "plain.tif", {})).known());
  // Non-square pixels cannot be measured with one size.
  c = io::read_calibration(dir + "/cm.tif");
  EXPECT_THROW(io::require_nm_per_pixel(c, "cm.tif"), Error);
}

TEST(Calibration, ImageJDescription) {
  const std::string dir = test::temp_dir("cal_imagej");
  // ImageJ writes pixels per unit in the resolution tags, unit "none".
  io::Calibration c = io::read_calibration(
      write_tiff(dir, "ij.tif", {200, 200, RESUNIT_NONE, "ImageJ=1.53t\nimages=1\nunit=micron\nspacing=0.3\n"}));
  EXPECT_EQ(c.source, io::CalibrationSource::kImageJ);
  EXPECT_NEAR(c.nm_per_pixel_x, 5.0, 1e-4);  // 1/200 µm
  EXPECT_NEAR(c.nm_per_pixel_y, 5.0, 1e-4);
  // The escaped micro sign ImageJ writes, and nm.
  c = io::read_calibration(write_tiff(dir, "ij_mu.tif", {100, 100, RESUNIT_NONE, "ImageJ=1.54f\nunit=\\u00B5m\n"}));
  EXPECT_EQ(c.source, io::CalibrationSource::kImageJ);
  EXPECT_NEAR(c.nm_per_pixel_x, 10.0, 1e-4);
  c = io::read_calibration(write_tiff(dir, "ij_nm.tif", {0.5f, 0.5f, RESUNIT_NONE, "ImageJ=1.54f\nunit=nm\n"}));
  EXPECT_NEAR(c.nm_per_pixel_x, 2.0, 1e-6);
  // unit=pixel: uncalibrated.
  EXPECT_FALSE(io::read_calibration(write_tiff(dir, "ij_px.tif", {1, 1, RESUNIT_NONE, "ImageJ=1.54f\nunit=pixel\n"}))
                   .known());
}

TEST(Calibration, OmeXmlDescription) {
  const std::string dir = test::temp_dir("cal_ome");
  const std::string head = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><OME xmlns=\"http://www.openmicroscopy.org/"
                           "Schemas/OME/2016-06\"><Image ID=\"Image:0\"><Pixels ID=\"Pixels:0\" DimensionOrder=\"XYCZT\" ";
  const std::string tail = " SizeX=\"8\" SizeY=\"4\" SizeC=\"1\" SizeZ=\"1\" SizeT=\"1\" Type=\"uint16\"></Pixels></Image></OME>";
  // Default unit µm; the resolution tags (ignored when OME-XML says) disagree on purpose.
  io::Calibration c = io::read_calibration(write_tiff(
      dir, "a.ome.tif", {300, 300, RESUNIT_INCH, head + "PhysicalSizeX=\"0.0125\" PhysicalSizeY=\"0.0125\"" + tail}));
  EXPECT_EQ(c.source, io::CalibrationSource::kOmeXml);
  EXPECT_NEAR(c.nm_per_pixel_x, 12.5, 1e-6);
  EXPECT_NEAR(c.nm_per_pixel_y, 12.5, 1e-6);
  c = io::read_calibration(write_tiff(dir, "b.ome.tif",
                                      {0, 0, 0,
                                       head + "PhysicalSizeX=\"3.2\" PhysicalSizeXUnit=\"nm\" PhysicalSizeY=\"32\" "
                                              "PhysicalSizeYUnit=\"\xC3\x85\"" + tail}));
  EXPECT_EQ(c.source, io::CalibrationSource::kOmeXml);
  EXPECT_NEAR(c.nm_per_pixel_x, 3.2, 1e-9);
  EXPECT_NEAR(c.nm_per_pixel_y, 3.2, 1e-9);
  // A namespace prefix on the elements.
  c = io::read_calibration(write_tiff(
      dir, "c.ome.tif",
      {0, 0, 0, "<ome:OME xmlns:ome=\"x\"><ome:Image><ome:Pixels PhysicalSizeX=\"2\" PhysicalSizeXUnit=\"nm\">"
                "</ome:Pixels></ome:Image></ome:OME>"}));
  EXPECT_NEAR(c.nm_per_pixel_x, 2.0, 1e-9);
  EXPECT_NEAR(c.nm_per_pixel_y, 2.0, 1e-9);
}

TEST(Calibration, PngHasNoneAndInfoJson) {
  const std::string dir = test::temp_dir("cal_info");
  cv::imwrite(dir + "/a.png", cv::Mat(5, 7, CV_8UC3, cv::Scalar(1, 2, 3)));
  const io::ImageInfo info = io::read_image_info(dir + "/a.png");
  EXPECT_EQ(info.format, "png");
  EXPECT_EQ(info.width, 7);
  EXPECT_EQ(info.height, 5);
  EXPECT_EQ(info.channels, 3);
  EXPECT_EQ(info.data_type, "uint8");
  EXPECT_EQ(info.calibration.source, io::CalibrationSource::kNone);
  const std::string json = io::image_info_json("a.png", info);
  EXPECT_NE(json.find("\"nm_per_pixel_x\":null"), std::string::npos) << json;
  EXPECT_NE(json.find("\"calibration_source\":\"none\""), std::string::npos) << json;
  const io::ImageInfo t = io::read_image_info(write_tiff(dir, "t.tif", {400, 400, RESUNIT_CENTIMETER, ""}));
  EXPECT_EQ(t.format, "tiff");
  EXPECT_EQ(t.data_type, "uint16");
  EXPECT_EQ(t.width, 8);
  EXPECT_EQ(t.height, 4);
  EXPECT_NE(io::image_info_json("t.tif", t).find("\"nm_per_pixel_x\":25000"), std::string::npos);
}
