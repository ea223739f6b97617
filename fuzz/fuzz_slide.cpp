// The slide reader (libtiff (OME-)TIFF pyramids, OpenSlide, plain images) on a file
// written per input: open_slide, then a small region of the first and the last level
// (the region past the level's edge too). The first input byte chooses the extension.
#include <algorithm>

#include "fuzz_util.h"
#include "nephroseg/slide/reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const char* kExt[] = {".tif", ".ome.tif", ".svs", ".png"};
  const std::string path = nephroseg::fuzz::scratch_file(data + 1, size - 1, kExt[data[0] % 4]);
  nephroseg::fuzz::expect_only_our_errors([&] {
    auto reader = nephroseg::slide::open_slide(path);
    const auto& levels = reader->info().levels;
    for (int level : {0, static_cast<int>(levels.size()) - 1}) {
      const auto& l = levels[static_cast<size_t>(level)];
      const int w = static_cast<int>(std::clamp<int64_t>(l.width, 1, 48));
      const int h = static_cast<int>(std::clamp<int64_t>(l.height, 1, 48));
      const cv::Mat m = reader->read_region(level, cv::Rect(static_cast<int>(std::min<int64_t>(l.width, 1 << 20)) - w / 2,
                                                            0, w, h));
      if (m.cols != w || m.rows != h) {
        std::fprintf(stderr, "read_region returned %dx%d for %dx%d\n", m.cols, m.rows, w, h);
        std::abort();
      }
    }
  });
  return 0;
}
