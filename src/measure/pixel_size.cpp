// The pixel size of an image file (see nephroseg/measure/pixel_size.h).
#include "nephroseg/measure/pixel_size.h"

#include <cmath>
#include <cstdlib>

#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"

namespace nephroseg::measure {

double parse_nm_per_pixel_option(const std::string& text) {
  if (text == "auto") return 0;
  char* end = nullptr;
  const double v = text.empty() ? 0 : std::strtod(text.c_str(), &end);
  NEPHRO_CHECK(!text.empty() && end == text.c_str() + text.size() && std::isfinite(v) && v > 0,
               "--nm-per-pixel must be 'auto' or a positive, finite number of nm per pixel (got '", text, "')");
  return v;
}

PixelSize find_pixel_size(const std::string& file, double explicit_nm,
                          const std::function<void(const std::string&)>& warn) {
  PixelSize c;
  c.file = file;
  c.in_file = io::read_calibration(file);
  if (explicit_nm > 0) {
    c.nm_per_pixel = explicit_nm;
    c.source = "option";
    if (c.in_file.known()) {
      const double file_nm = 0.5 * (c.in_file.nm_per_pixel_x + c.in_file.nm_per_pixel_y);
      if (std::abs(explicit_nm - file_nm) > 0.01 * file_nm) {
        const std::string message = detail::concat(
            "--nm-per-pixel ", explicit_nm, " disagrees with the calibration of '", file, "' (", file_nm,
            " nm per pixel from ", io::calibration_source_names().name(c.in_file.source), "); using ", explicit_nm);
        if (warn) warn(message);
      }
    }
    return c;
  }
  if (!c.in_file.known() && !c.in_file.reciprocal) {
    c.source = "none";
    return c;
  }
  c.nm_per_pixel = io::require_nm_per_pixel(c.in_file, file);
  c.source = io::calibration_source_names().name(c.in_file.source);
  return c;
}

PixelSize resolve_pixel_size(const std::string& file, double explicit_nm,
                             const std::function<void(const std::string&)>& warn) {
  PixelSize c = find_pixel_size(file, explicit_nm, warn);
  NEPHRO_CHECK(c.known(), "no pixel size for '", file,
               "': the file carries no calibration (DM, OME-XML, ImageJ or TIFF resolution tags); give "
               "--nm-per-pixel <nm>");
  return c;
}

CalibrationRecord calibration_record(const PixelSize& c) {
  CalibrationRecord r;
  r.source = c.source;
  r.file = c.file;
  r.file_source = io::calibration_source_names().name(c.in_file.source);
  r.file_nm_per_pixel = c.in_file.known() ? 0.5 * (c.in_file.nm_per_pixel_x + c.in_file.nm_per_pixel_y) : 0.0;
  r.file_unit = c.in_file.unit;
  return r;
}

}  // namespace nephroseg::measure
