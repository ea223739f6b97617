// `nephroseg info FILE...`: what each image file is and the pixel size it carries,
// one JSON object per line (io::read_image_info / io::image_info_json do the work); a
// whole slide also gets a "slide" object (slide::probe_slide / slide_info_json): its
// reader, levels and mpp.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "command.h"
#include "nephroseg/core/error.h"
#include "nephroseg/io/calibration.h"
#include "nephroseg/slide/reader.h"

namespace nephroseg::cli {
namespace {

struct InfoParams {
  std::vector<std::string> files;
};

int run_info(const InfoParams& p) {
  int failed = 0;
  for (const auto& f : p.files) {
    const std::optional<slide::SlideInfo> as_slide = slide::probe_slide(f);
    try {
      std::string line;
      try {
        line = io::image_info_json(f, io::read_image_info(f));
      } catch (const Error&) {
        if (!as_slide) throw;
        // A slide format the image readers do not open (MRXS, ...): the slide alone.
        line = "{\"file\":" + nlohmann::json(f).dump() + ",\"format\":\"slide\"}";
      }
      if (as_slide) line = line.substr(0, line.size() - 1) + ",\"slide\":" + slide::slide_info_json(*as_slide) + "}";
      std::cout << line << std::endl;
    } catch (const Error& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      ++failed;
    }
  }
  return failed == 0 ? 0 : 1;
}

Runner setup_info(CLI::App& app) {
  auto p = std::make_shared<InfoParams>();
  app.add_option("files", p->files, "image files (PNG, JPEG, TIFF, DM3, DM4) and whole slides (SVS, NDPI, MRXS, OME-TIFF, ...)")->required();
  return [p] { return run_info(*p); };
}

}  // namespace

NEPHRO_COMMAND("", "info",
               "format, size, data type and pixel size (nm per pixel, with its source) of image files, as JSON lines",
               setup_info);

}  // namespace nephroseg::cli
