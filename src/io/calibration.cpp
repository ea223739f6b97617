#include "nephroseg/io/calibration.h"

#include <tiffio.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <cctype>

#include "nephroseg/core/error.h"
#include "nephroseg/io/ome_xml.h"
#include "nephroseg/io/dm.h"
#include "nephroseg/io/image.h"

namespace nephroseg::io {

namespace {

struct TiffCloser {
  void operator()(TIFF* t) const { if (t) TIFFClose(t); }
};

std::unique_ptr<TIFF, TiffCloser> open_tiff_quiet(const std::string& path) {
  TIFFSetErrorHandler(nullptr);
  TIFFSetWarningHandler(nullptr);
  std::unique_ptr<TIFF, TiffCloser> tif(TIFFOpen(path.c_str(), "r"));
  NEPHRO_CHECK(tif != nullptr, "cannot open TIFF '", path, "' (missing, truncated or not a TIFF file)");
  return tif;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n\"'");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n\"'");
  return s.substr(b, e - b + 1);
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
}

double positive_number(const std::string& text) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used != text.size() || !std::isfinite(v) || v <= 0) return 0;
    return v;
  } catch (const std::exception&) {
    return 0;
  }
}

// Calibration from a pixel size and a unit text (both axes).
Calibration from_sizes(CalibrationSource source, double size_x, double size_y, const std::string& unit_x,
                       const std::string& unit_y) {
  Calibration c;
  c.unit = unit_x;
  const double kx = nm_per_unit(unit_x), ky = nm_per_unit(unit_y);
  if (kx < 0 || ky < 0) {
    c.source = source;
    c.reciprocal = true;
    return c;
  }
  // The products are checked too: a huge size (1e305 m) would give an infinite pixel size.
  if (kx > 0 && ky > 0 && size_x > 0 && size_y > 0 && std::isfinite(size_x * kx) && std::isfinite(size_y * ky)) {
    c.source = source;
    c.nm_per_pixel_x = size_x * kx;
    c.nm_per_pixel_y = size_y * ky;
  }
  return c;
}

// The OME-XML pixel size (io/ome_xml.h). A description that is not well-formed XML
// carries no calibration we can trust: none is taken from it.
Calibration from_ome(const std::string& xml) {
  std::optional<OmePixels> pixels;
  try {
    pixels = read_ome_pixels(xml, "OME-XML");
  } catch (const Error&) {
    return {};
  }
  if (!pixels) return {};
  const double sx = positive_number(pixels->physical_size_x), sy = positive_number(pixels->physical_size_y);
  const std::string ux = pixels->unit_x.empty() ? "µm" : pixels->unit_x;  // the OME schema's default
  const std::string uy = pixels->unit_y.empty() ? "µm" : pixels->unit_y;
  if (sx <= 0) return {};
  if (sy <= 0) return from_sizes(CalibrationSource::kOmeXml, sx, sx, ux, ux);  // no y: square pixels
  return from_sizes(CalibrationSource::kOmeXml, sx, sy, ux, uy);
}

std::string imagej_value(const std::string& desc, const std::string& key) {
  size_t p = 0;
  while (p < desc.size()) {
    size_t e = desc.find('\n', p);
    if (e == std::string::npos) e = desc.size();
    const std::string line = desc.substr(p, e - p);
    if (line.compare(0, key.size() + 1, key + "=") == 0) return trim(line.substr(key.size() + 1));
    p = e + 1;
  }
  return {};
}

Calibration read_tiff_calibration(const std::string& path) {
  auto tif = open_tiff_quiet(path);
  TiffCalibrationTags tags;
  tags.have_x_resolution = TIFFGetField(tif.get(), TIFFTAG_XRESOLUTION, &tags.x_resolution) == 1;
  tags.have_y_resolution = TIFFGetField(tif.get(), TIFFTAG_YRESOLUTION, &tags.y_resolution) == 1;
  TIFFGetFieldDefaulted(tif.get(), TIFFTAG_RESOLUTIONUNIT, &tags.resolution_unit);
  char* desc_c = nullptr;
  if (TIFFGetField(tif.get(), TIFFTAG_IMAGEDESCRIPTION, &desc_c) == 1 && desc_c) tags.description = desc_c;
  return calibration_from_tiff_tags(tags);
}

std::string tiff_data_type(const std::string& path, int& pages) {
  auto tif = open_tiff_quiet(path);
  pages = static_cast<int>(TIFFNumberOfDirectories(tif.get()));
  uint16_t bits = 1, format = SAMPLEFORMAT_UINT;
  TIFFGetFieldDefaulted(tif.get(), TIFFTAG_BITSPERSAMPLE, &bits);
  TIFFGetFieldDefaulted(tif.get(), TIFFTAG_SAMPLEFORMAT, &format);
  if (bits == 1) return "bit";
  const std::string kind = format == SAMPLEFORMAT_IEEEFP ? "float" : format == SAMPLEFORMAT_INT ? "int" : "uint";
  return kind + std::to_string(bits);
}

std::string mat_depth_name(int depth) {
  switch (depth) {
    case CV_8U: return "uint8";
    case CV_8S: return "int8";
    case CV_16U: return "uint16";
    case CV_16S: return "int16";
    case CV_32S: return "int32";
    case CV_32F: return "float32";
    case CV_64F: return "float64";
    default: return "other";
  }
}

}  // namespace

const EnumNames<CalibrationSource>& calibration_source_names() {
  static const EnumNames<CalibrationSource> t("calibration source",
                                              {{CalibrationSource::kNone, "none", {}},
                                               {CalibrationSource::kDm, "dm", {}},
                                               {CalibrationSource::kTiffResolution, "tiff-resolution", {}},
                                               {CalibrationSource::kImageJ, "imagej", {}},
                                               {CalibrationSource::kOmeXml, "ome-xml", {}}});
  return t;
}

double nm_per_unit(const std::string& unit_text) {
  std::string u = trim(unit_text);
  replace_all(u, "\xC2\xB5", "u");      // µ (micro sign)
  replace_all(u, "\xCE\xBC", "u");      // μ (Greek mu)
  replace_all(u, "\xC3\x85", "A");      // Å
  replace_all(u, "\xE2\x84\xAB", "A");  // Å (angstrom sign)
  replace_all(u, " ", "");
  std::transform(u.begin(), u.end(), u.begin(), [](unsigned char c) { return std::tolower(c); });
  if (u.empty()) return 0;
  if (u.compare(0, 2, "1/") == 0 || u.find("^-1") != std::string::npos ||
      (u.size() > 2 && u.compare(u.size() - 2, 2, "-1") == 0))
    return -1;
  if (u == "nm" || u == "nanometer" || u == "nanometers" || u == "nanometre" || u == "nanometres") return 1;
  if (u == "um" || u == "micron" || u == "microns" || u == "micrometer" || u == "micrometers" || u == "micrometre" ||
      u == "micrometres")
    return 1000;
  if (u == "a" || u == "angstrom" || u == "angstroms" || u == "ang") return 0.1;
  if (u == "pm") return 1e-3;
  if (u == "mm") return 1e6;
  if (u == "cm") return 1e7;
  if (u == "m" || u == "meter" || u == "metre" || u == "meters" || u == "metres") return 1e9;
  return 0;
}

Calibration calibration_from_tiff_tags(const TiffCalibrationTags& tags) {
  const std::string& desc = tags.description;
  const bool have_x = tags.have_x_resolution, have_y = tags.have_y_resolution;
  float xres = have_x ? tags.x_resolution : 0.0f;
  float yres = tags.have_y_resolution ? tags.y_resolution : 0.0f;
  const uint16_t res_unit = tags.resolution_unit;
  if (!have_y) yres = xres;

  if (desc.find("<OME") != std::string::npos || desc.find(":OME") != std::string::npos) {
    const Calibration c = from_ome(desc);
    if (c.source != CalibrationSource::kNone) return c;
  }
  if (desc.compare(0, 7, "ImageJ=") == 0) {
    std::string unit = imagej_value(desc, "unit");
    replace_all(unit, "\\u00B5", "µ");
    replace_all(unit, "\\u00b5", "µ");
    if (have_x && xres > 0 && yres > 0 && !unit.empty()) {
      const Calibration c = from_sizes(CalibrationSource::kImageJ, 1.0 / xres, 1.0 / yres, unit, unit);
      if (c.source != CalibrationSource::kNone) return c;
    }
  }
  if (have_x && xres > 0 && yres > 0 && std::isfinite(xres) && std::isfinite(yres) &&
      (res_unit == RESUNIT_INCH || res_unit == RESUNIT_CENTIMETER)) {
    const bool screen_default = res_unit == RESUNIT_INCH && xres == yres && (xres == 72.0f || xres == 96.0f);
    if (!screen_default) {
      Calibration c;
      c.source = CalibrationSource::kTiffResolution;
      const double unit_nm = res_unit == RESUNIT_INCH ? 25.4e6 : 1e7;
      c.unit = res_unit == RESUNIT_INCH ? "inch" : "cm";
      c.nm_per_pixel_x = unit_nm / xres;
      c.nm_per_pixel_y = unit_nm / yres;
      // A denormal resolution gives an infinite pixel size: no calibration.
      if (std::isfinite(c.nm_per_pixel_x) && std::isfinite(c.nm_per_pixel_y)) return c;
    }
  }
  return {};
}

Calibration read_calibration(const std::string& path) {
  std::error_code ec;
  NEPHRO_CHECK(std::filesystem::is_regular_file(path, ec), "image '", path, "' does not exist");
  const std::string format = image_format(path);
  if (format == "dm3" || format == "dm4") {
    const DmImage dm = read_dm(path);
    Calibration c = from_sizes(CalibrationSource::kDm, dm.x.scale, dm.y.scale, dm.x.units, dm.y.units);
    if (c.unit.empty()) c.unit = dm.x.units;
    c.magnification = dm.magnification;
    return c;
  }
  if (format == "tiff") return read_tiff_calibration(path);
  return {};
}

double require_nm_per_pixel(const Calibration& c, const std::string& path) {
  NEPHRO_CHECK(!c.reciprocal, "'", path, "' is calibrated in '", c.unit,
               "' (reciprocal space: a diffraction pattern or FFT, not a real-space image); lengths cannot be measured");
  NEPHRO_CHECK(c.known(), "'", path, "' carries no pixel size (no DM, OME-XML, ImageJ or TIFF resolution calibration)");
  const double mean = 0.5 * (c.nm_per_pixel_x + c.nm_per_pixel_y);
  NEPHRO_CHECK(std::abs(c.nm_per_pixel_x - c.nm_per_pixel_y) <= 0.01 * mean, "'", path, "' has non-square pixels (",
               c.nm_per_pixel_x, " x ", c.nm_per_pixel_y, " nm): thickness needs one pixel size");
  return mean;
}

ImageInfo read_image_info(const std::string& path) {
  std::error_code ec;
  NEPHRO_CHECK(std::filesystem::is_regular_file(path, ec), "image '", path, "' does not exist");
  ImageInfo info;
  info.format = image_format(path);
  if (info.format == "dm3" || info.format == "dm4") {
    const DmImage dm = read_dm(path);
    info.width = dm.width;
    info.height = dm.height;
    info.data_type = dm_data_type_name(dm.data_type);
    info.channels = dm.pixels.channels();
  } else {
    const cv::Mat raw = read_image_raw(path, 0);
    info.width = raw.cols;
    info.height = raw.rows;
    info.channels = raw.channels();
    info.data_type = info.format == "tiff" ? tiff_data_type(path, info.pages) : mat_depth_name(raw.depth());
  }
  info.calibration = read_calibration(path);
  return info;
}

std::string image_info_json(const std::string& path, const ImageInfo& info) {
  const auto& c = info.calibration;
  nlohmann::ordered_json j;
  j["file"] = path;
  j["format"] = info.format;
  j["width"] = info.width;
  j["height"] = info.height;
  j["data_type"] = info.data_type;
  j["channels"] = info.channels;
  j["pages"] = info.pages;
  j["nm_per_pixel_x"] = c.known() ? nlohmann::ordered_json(c.nm_per_pixel_x) : nlohmann::ordered_json(nullptr);
  j["nm_per_pixel_y"] = c.known() ? nlohmann::ordered_json(c.nm_per_pixel_y) : nlohmann::ordered_json(nullptr);
  j["calibration_source"] = calibration_source_names().name(c.source);
  j["unit"] = c.unit;
  j["reciprocal"] = c.reciprocal;
  j["magnification"] = c.magnification > 0 ? nlohmann::ordered_json(c.magnification) : nlohmann::ordered_json(nullptr);
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace nephroseg::io
