// Gatan DigitalMicrograph (.dm3/.dm4) files from bytes: the tag-tree walk, the type
// descriptions, the image selection and the pixel decoding.
#include "fuzz_util.h"
#include "nephroseg/io/dm.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  (void)nephroseg::io::looks_like_dm(bytes);
  nephroseg::fuzz::expect_only_our_errors([&] {
    const nephroseg::io::DmImage image = nephroseg::io::read_dm_bytes(bytes, "fuzz.dm4");
    // What the reader promises: a 2-D image of the stated size within io's limits.
    if (image.pixels.rows != image.height || image.pixels.cols != image.width || image.width <= 0 ||
        image.height <= 0) {
      std::fprintf(stderr, "read_dm_bytes returned %dx%d pixels for a %dx%d image\n", image.pixels.cols,
                   image.pixels.rows, image.width, image.height);
      std::abort();
    }
  });
  return 0;
}
