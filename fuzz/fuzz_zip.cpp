// The zip layer of the checkpoint reader alone: our central-directory index (end
// records, zip64 fields, stored entries inside the file, archive folder, version
// record), which runs before LibTorch's zip reader is allowed to allocate anything.
// Every record it accepts must lie inside the input.
#include "fuzz_util.h"
#include "nephroseg/checkpoint/pth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nephroseg::fuzz::expect_only_our_errors([&] {
    const auto records = nephroseg::checkpoint::read_zip_records_memory(data, size, "checkpoint 'fuzz.pth'");
    for (const auto& [name, bytes] : records) {
      if (bytes > size) {
        std::fprintf(stderr, "record '%s' of %llu bytes in a %zu-byte archive\n", name.c_str(),
                     static_cast<unsigned long long>(bytes), size);
        std::abort();
      }
    }
  });
  return 0;
}
