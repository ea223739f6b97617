// The .npy reader.
#include "fuzz_util.h"
#include "nephroseg/io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = nephroseg::fuzz::scratch_file(data, size, ".npy");
  nephroseg::fuzz::expect_only_our_errors([&] { (void)nephroseg::io::read_npy(path); });
  return 0;
}
