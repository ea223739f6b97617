// The per-image prompts JSON of `nephroseg sam --prompts`, from text, then each prompt
// checked against a small image and the ViT-B and MedSAM configs. mask_input paths
// resolve against a folder that holds no files, so every .npy reference fails cleanly
// (the .npy reader has its own target).
#include "fuzz_util.h"
#include "nephroseg/sam/prompts_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const nephroseg::sam::SamConfig kConfigs[] = {nephroseg::sam::SamConfig::vit_b(),
                                                       nephroseg::sam::SamConfig::medsam()};
  const std::string text(reinterpret_cast<const char*>(data), size);
  nephroseg::fuzz::expect_only_our_errors([&] {
    const auto specs = nephroseg::sam::parse_prompts_json(
        text, "/nonexistent-nephroseg-fuzz-dir", "prompts 'fuzz.json'");
    for (const auto& entry : specs) {
      const nephroseg::sam::PromptSpec& spec = entry.second;
      for (const auto& config : kConfigs) {
        nephroseg::fuzz::expect_only_our_errors([&] {
          nephroseg::sam::check_prompt_fits(spec, 64, 48, config, "fuzz.png");
        });
      }
    }
  });
  return 0;
}
