// Model config JSON: GlomSAM (from text, as stored in checkpoints), SAM and DINOv2
// (from a file). The first input byte chooses the reader.
#include "fuzz_util.h"
#include "nephroseg/dinov2/dinov2.h"
#include "nephroseg/glomsam/glomsam.h"
#include "nephroseg/sam/sam.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  nephroseg::fuzz::expect_only_our_errors([&] {
    switch (data[0] % 3) {
      case 0:
        (void)nephroseg::glomsam::GlomSamConfig::from_json_text(text, "fuzz config");
        break;
      case 1:
        (void)nephroseg::sam::SamConfig::from_json(
            nephroseg::fuzz::scratch_file(data + 1, size - 1, ".json"));
        break;
      default:
        (void)nephroseg::dinov2::Dinov2Config::from_json(
            nephroseg::fuzz::scratch_file(data + 1, size - 1, ".json"));
        break;
    }
  });
  return 0;
}
