// The whole .pth reader from bytes: our zip index, LibTorch's zip reader (miniz),
// then the pickle VM and the storage checks.
#include "fuzz_util.h"
#include "nephroseg/checkpoint/pth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nephroseg::fuzz::expect_only_our_errors([&] {
    nephroseg::checkpoint::Value v =
        nephroseg::checkpoint::load_pickle_memory(data, size, "checkpoint 'fuzz.pth'");
    (void)nephroseg::checkpoint::state_dict_from_value(v, "checkpoint 'fuzz.pth'");
  });
  return 0;
}
