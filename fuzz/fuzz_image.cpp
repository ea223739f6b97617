// Image decoding through the io layer (io::read_image_raw picks libtiff or OpenCV
// from the content). The first input byte chooses the file extension.
#include "fuzz_util.h"
#include "nephroseg/io/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const char* kExt[] = {".png", ".tif", ".jpg", ".bmp", ".pgm", ".ppm"};
  const std::string path =
      nephroseg::fuzz::scratch_file(data + 1, size - 1, kExt[data[0] % 6]);
  nephroseg::fuzz::expect_only_our_errors([&] { (void)nephroseg::io::read_image_raw(path); });
  return 0;
}
