// `nephroseg info FILE...`: what each image file is and the pixel size it carries,
// one JSON object per line (io::read_image_info / io::image_info_json do the work).
#include <cstdio>
#include <iostream>

#include "command.h"
#include "nephroseg/core/error.h"
#include "nephroseg/io/calibration.h"

namespace nephroseg::cli {
namespace {

struct InfoParams {
  std::vector<std::string> files;
};

int run_info(const InfoParams& p) {
  int failed = 0;
  for (const auto& f : p.files) {
    try {
      std::cout << io::image_info_json(f, io::read_image_info(f)) << std::endl;
    } catch (const Error& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      ++failed;
    }
  }
  return failed == 0 ? 0 : 1;
}

Runner setup_info(CLI::App& app) {
  auto p = std::make_shared<InfoParams>();
  app.add_option("files", p->files, "image files (PNG, JPEG, TIFF, DM3, DM4)")->required();
  return [p] { return run_info(*p); };
}

}  // namespace

NEPHRO_COMMAND("", "info",
               "format, size, data type and pixel size (nm per pixel, with its source) of image files, as JSON lines",
               setup_info);

}  // namespace nephroseg::cli
