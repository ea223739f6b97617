// The pickle VM alone (no zip layer): thousands of inputs per second. Storage keys
// "0".."3" resolve to small records so that tensor rebuilding is reached too.
#include <map>
#include <string>

#include "fuzz_util.h"
#include "nephroseg/checkpoint/pth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::map<std::string, std::string> records = {
      {"0", std::string(64, '\1')}, {"1", std::string(16, '\2')}, {"2", std::string(4, '\3')},
      {"3", std::string()}};
  nephroseg::fuzz::expect_only_our_errors([&] {
    nephroseg::checkpoint::Value v =
        nephroseg::checkpoint::unpickle_memory(data, size, records, "fuzz pickle");
    (void)nephroseg::checkpoint::state_dict_from_value(v, "fuzz pickle");
  });
  return 0;
}
