// nephroseg/io/calibration.h: the pixel size a micrograph file carries, and what a
// file is (`nephroseg info`).
//
// Where the pixel size comes from, by format (first match wins):
//   * DM3/DM4 ("dm"): ImageData.Calibrations.Dimension 0 (x) and 1 (y), Scale and
//     Units (io/dm.h).
//   * TIFF, OME-XML ("ome-xml"): an ImageDescription holding OME-XML; the first
//     <Pixels> element's PhysicalSizeX / PhysicalSizeY, in PhysicalSizeXUnit /
//     PhysicalSizeYUnit (default µm, as the OME schema says).
//   * TIFF, ImageJ ("imagej"): an ImageDescription starting "ImageJ=" with a
//     `unit=` line (micron, um, µm, \u00B5m, nm, Å, ...); the pixel size is
//     1 / XResolution and 1 / YResolution in that unit (ImageJ writes the resolution
//     tags in pixels per unit; `spacing=` is the z step and is not used).
//   * TIFF, resolution tags ("tiff-resolution"): XResolution / YResolution in pixels
//     per ResolutionUnit, which must be centimetre (3) or inch (2; the TIFF default).
//     72 and 96 pixels per inch with x = y are what image editors write without any
//     calibration (screen defaults) and are ignored.
//   * anything else, or a file without these ("none").
// Units: nm, µm (also um, micron, the Greek mu), Å (also A, angstrom), pm, mm, cm, m,
// converted to nm per pixel. Reciprocal units (1/nm, nm^-1, 1/µm, ...) mark a
// diffraction pattern or an FFT: the calibration is reported (reciprocal = true) with
// no nm per pixel, and require_nm_per_pixel() refuses it for measuring. An unknown or
// empty unit is no calibration.
//
// Thread safety: reentrant (libtiff's global handlers are set once, silenced).
#pragma once

#include <cstdint>
#include <string>

#include "nephroseg/core/enum_names.h"

namespace nephroseg::io {

enum class CalibrationSource { kNone, kDm, kTiffResolution, kImageJ, kOmeXml };

/// "none", "dm", "tiff-resolution", "imagej", "ome-xml".
const EnumNames<CalibrationSource>& calibration_source_names();

struct Calibration {
  double nm_per_pixel_x = 0.0;  ///< 0 when unknown
  double nm_per_pixel_y = 0.0;
  CalibrationSource source = CalibrationSource::kNone;
  std::string unit;             ///< the unit text as stored in the file (UTF-8)
  bool reciprocal = false;      ///< reciprocal unit (1/nm ...): not a real-space image
  double magnification = 0.0;   ///< indicated microscope magnification; 0 = unknown

  /// True when both pixel sizes are known (> 0).
  bool known() const { return nm_per_pixel_x > 0 && nm_per_pixel_y > 0; }
};

/// nm per unit for a length unit ("nm" -> 1, "µm" -> 1000, "Å" -> 0.1, ...); 0 for an
/// unknown or empty unit; -1 for a reciprocal unit ("1/nm", "nm^-1", ...).
double nm_per_unit(const std::string& unit);

/// The calibration of an image file (DM3/DM4 or TIFF; PNG/JPEG give "none"). Throws
/// nephroseg::Error naming the file when it cannot be read.
Calibration read_calibration(const std::string& path);

/// The TIFF tags a calibration is read from (first directory), as libtiff returns them.
struct TiffCalibrationTags {
  std::string description;      ///< ImageDescription (OME-XML, ImageJ header or text)
  bool have_x_resolution = false;
  bool have_y_resolution = false;
  float x_resolution = 0;       ///< pixels per resolution unit
  float y_resolution = 0;
  uint16_t resolution_unit = 2; ///< 1 none, 2 inch (the TIFF default), 3 centimetre
};

/// The calibration those tags describe, by the TIFF rules above (OME-XML, then ImageJ,
/// then the resolution tags). Pure text and number parsing: what read_calibration does
/// after libtiff has read the tags, and the calibration fuzz target's entry point.
/// Never throws for any description text; source "none" when nothing applies.
Calibration calibration_from_tiff_tags(const TiffCalibrationTags& tags);

/// The one pixel size to measure with: the mean of x and y (they must agree within
/// 1 %). Throws naming `path` for no calibration, a reciprocal unit, or x != y.
double require_nm_per_pixel(const Calibration& calibration, const std::string& path);

/// What `nephroseg info` prints for one file.
struct ImageInfo {
  std::string format;      ///< "png", "jpeg", "tiff", "dm3", "dm4", "other"
  int width = 0, height = 0;
  std::string data_type;   ///< "uint8", "uint16", "int16", "float32", ... as stored
  int channels = 0;
  int pages = 1;           ///< TIFF directories
  Calibration calibration;
};

/// Reads the file (the same readers as read_image_raw) and its calibration.
ImageInfo read_image_info(const std::string& path);
/// One line of JSON: {"file", "format", "width", "height", "data_type", "channels",
/// "pages", "nm_per_pixel_x", "nm_per_pixel_y" (null when unknown), "calibration_source",
/// "unit", "reciprocal", "magnification" (null when unknown)}.
std::string image_info_json(const std::string& path, const ImageInfo& info);

}  // namespace nephroseg::io
