// nephroseg/measure/pixel_size.h: the pixel size an image is measured with, and where it
// came from (`--nm-per-pixel auto|<nm>` of `measure` and `gbmseg`).
//
//   "auto" (the default): the file's own calibration (io/calibration.h: DM, OME-XML,
//   ImageJ, TIFF resolution tags); a file without one is an error naming it.
//   A number: used as given; when the file carries a calibration that differs by more
//   than 1 %, a warning names both values.
//
//   const double nm = parse_nm_per_pixel_option(text);           // 0 = auto
//   PixelSize px = resolve_pixel_size("a.dm4", nm, log_warn_fn);  // throws without one
//
// Thread safety: reentrant.
#pragma once

#include <functional>
#include <string>

#include "nephroseg/io/calibration.h"
#include "nephroseg/measure/report.h"

namespace nephroseg::measure {

struct PixelSize {
  double nm_per_pixel = 0;  ///< 0 = unknown (only from find_pixel_size)
  std::string source;       ///< "option" or the file's calibration source ("dm", "ome-xml", ...); "none"
  std::string file;         ///< the file whose calibration was read
  io::Calibration in_file;  ///< what that file says
  bool known() const { return nm_per_pixel > 0; }
};

/// Parses the --nm-per-pixel text: "auto" gives 0; else a positive finite number, or
/// an error naming the option.
double parse_nm_per_pixel_option(const std::string& text);

/// The pixel size of `file` (see the header comment); `warn` hears the disagreement
/// warning. Throws nephroseg::Error naming the file when there is none (or it is a
/// reciprocal-space calibration, or x and y differ).
PixelSize resolve_pixel_size(const std::string& file, double explicit_nm,
                             const std::function<void(const std::string&)>& warn = {});
/// The same, but a file without a calibration gives an unknown size (source "none")
/// instead of an error; reciprocal or anisotropic calibrations still throw.
PixelSize find_pixel_size(const std::string& file, double explicit_nm,
                          const std::function<void(const std::string&)>& warn = {});

/// What <name>_summary.json and the GBMSeg records keep of it.
CalibrationRecord calibration_record(const PixelSize& pixel_size);

}  // namespace nephroseg::measure
