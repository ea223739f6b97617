// Pixel-size calibration. The first input byte chooses the entry point:
//   0: io::calibration_from_tiff_tags: byte 1 = flags (bit 0 XResolution present,
//      bit 1 YResolution present), bytes 2-5 / 6-9 = the two resolutions (float, little
//      endian), bytes 10-11 = ResolutionUnit, the rest = ImageDescription (OME-XML,
//      ImageJ header or free text);
//   1: io::read_calibration on the rest as a .tif file (libtiff reads the tags);
//   2: io::nm_per_unit on the rest as a unit text.
// A calibration that claims to be known must be finite and positive.
#include <cmath>
#include <cstring>

#include "fuzz_util.h"
#include "nephroseg/io/calibration.h"

namespace {

void check(const nephroseg::io::Calibration& c) {
  const bool finite = std::isfinite(c.nm_per_pixel_x) && std::isfinite(c.nm_per_pixel_y) &&
                      c.nm_per_pixel_x >= 0 && c.nm_per_pixel_y >= 0;
  if (!finite || (c.reciprocal && c.known())) {
    std::fprintf(stderr, "impossible calibration %g x %g nm (reciprocal %d)\n", c.nm_per_pixel_x,
                 c.nm_per_pixel_y, int(c.reciprocal));
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t* rest = data + 1;
  const size_t n = size - 1;
  nephroseg::fuzz::expect_only_our_errors([&] {
    switch (data[0] % 3) {
      case 0: {
        if (n < 11) return;
        nephroseg::io::TiffCalibrationTags tags;
        tags.have_x_resolution = (rest[0] & 1) != 0;
        tags.have_y_resolution = (rest[0] & 2) != 0;
        std::memcpy(&tags.x_resolution, rest + 1, 4);
        std::memcpy(&tags.y_resolution, rest + 5, 4);
        tags.resolution_unit = static_cast<uint16_t>(rest[9] | (rest[10] << 8));
        tags.description.assign(reinterpret_cast<const char*>(rest + 11), n - 11);
        check(nephroseg::io::calibration_from_tiff_tags(tags));
        break;
      }
      case 1:
        check(nephroseg::io::read_calibration(nephroseg::fuzz::scratch_file(rest, n, ".tif")));
        break;
      default: {
        const double k = nephroseg::io::nm_per_unit(std::string(reinterpret_cast<const char*>(rest), n));
        if (!(k == -1 || k >= 0) || !std::isfinite(k)) std::abort();
        break;
      }
    }
  });
  return 0;
}
