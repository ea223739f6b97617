// The OME-XML reader (io/ome_xml.h) on arbitrary text: the description of an OME-TIFF,
// read by `info`, `slide` and every calibrated-image reader.
#include "fuzz_util.h"
#include "nephroseg/io/ome_xml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  nephroseg::fuzz::expect_only_our_errors([&] {
    const auto pixels = nephroseg::io::read_ome_pixels(text, "fuzz");
    if (pixels && pixels->channel_names.size() > text.size()) std::abort();  // a name per <Channel
  });
  return 0;
}
