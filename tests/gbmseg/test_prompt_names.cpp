// The GBMSeg name tables: canonical names are what prompts.json / run.json write, the
// CLI's spellings are aliases; presets and ablation rows resolve to the static presets.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "nephroseg/core/error.h"
#include "nephroseg/gbmseg/prompt_names.h"
#include "nephroseg/gbmseg/prompts_json.h"

using namespace nephroseg;
using namespace nephroseg::gbmseg;

TEST(GbmSegNames, CanonicalNamesAndCliAliases) {
  EXPECT_EQ(patch_rule_names().name(PatchRule::kAllNonZero), "all_nonzero");
  EXPECT_EQ(patch_rule_names().parse("all-nonzero"), PatchRule::kAllNonZero);
  EXPECT_EQ(patch_rule_names().parse("all_nonzero"), PatchRule::kAllNonZero);
  EXPECT_EQ(patch_rule_names().parse("threshold"), PatchRule::kThreshold);
  EXPECT_EQ(point_order_names().name(PointOrder::kCPythonSet), "cpython_set");
  EXPECT_EQ(point_order_names().parse("cpython-set"), PointOrder::kCPythonSet);
  EXPECT_EQ(point_order_names().parse("raster"), PointOrder::kRaster);
  EXPECT_EQ(hard_mode_names().parse("h1"), HardMode::kH1);
  EXPECT_EQ(hard_mode_names().name(HardMode::kOff), "off");
  EXPECT_EQ(ape_order_names().parse("2023"), ApeOrder::k2023);
  EXPECT_EQ(mask_resize_names().name(MaskResize::kBilinearThreshold), "bilinear-threshold");
  EXPECT_EQ(mask_resize_names().parse("bilinear"), MaskResize::kBilinearThreshold);
  EXPECT_EQ(prompt_preset_names().name(PromptPreset::kAuthorsCode), "authors-code");
  EXPECT_EQ(prompt_preset_names().parse("authors_2023"), PromptPreset::kAuthors2023);
  EXPECT_EQ(ablation_row_names().parse("forward"), AblationRow::kForwardOnly);
  EXPECT_EQ(ablation_row_names().name(AblationRow::kHard), "hard");
  try {
    point_order_names().parse("spiral", "--order");
    FAIL() << "no error for an unknown order";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("--order"), std::string::npos) << m;
    EXPECT_NE(m.find("spiral"), std::string::npos) << m;
  }
}

TEST(GbmSegNames, TheJsonWriterUsesTheCanonicalNames) {
  PromptOptions o = PromptOptions::paper();
  o.order = PointOrder::kCPythonSet;
  o.ape_order = ApeOrder::k2023;
  const nlohmann::json j = prompt_options_to_json(o);
  EXPECT_EQ(j["patch_rule"], "all_nonzero");
  EXPECT_EQ(j["order"], "cpython_set");
  EXPECT_EQ(j["hard_mode"], "h1");
  EXPECT_EQ(j["ape_order"], "2023");
}

TEST(GbmSegNames, PresetsAndAblationsByName) {
  // Paper preset (prompts.h): D_ex = 0.25 S, D_sp_pos = 0, H1 hard sampling.
  const PromptOptions paper = prompt_options_for(PromptPreset::kPaper);
  EXPECT_EQ(paper.d_ex.fraction, 0.25);
  EXPECT_EQ(paper.d_sp_pos.fraction, 0.0);
  EXPECT_EQ(paper.hard_mode, HardMode::kH1);
  EXPECT_TRUE(paper.hard_sample);
  // Authors' code: D_sp_hard 1 px, hard negatives not appended.
  const PromptOptions code = prompt_options_for(PromptPreset::kAuthorsCode);
  EXPECT_EQ(code.d_sp_hard.pixels, 1.0);
  EXPECT_FALSE(code.hard_sample);
  EXPECT_TRUE(prompt_options_for(PromptPreset::kAuthorsC0947).merge_h2_into_negatives);
  EXPECT_EQ(prompt_options_for(PromptPreset::kAuthors2023).ape_order, ApeOrder::k2023);
  // Table 1 first row: no backward filter, no exclusive, no sparse, no hard list.
  const PromptOptions fwd = prompt_options_for(PromptPreset::kPaper, AblationRow::kForwardOnly);
  EXPECT_FALSE(fwd.backward);
  EXPECT_FALSE(fwd.exclusive);
  EXPECT_FALSE(fwd.sparse);
  EXPECT_EQ(fwd.hard_mode, HardMode::kOff);
  EXPECT_THROW(prompt_options_for(PromptPreset::kAuthorsCode, AblationRow::kSparse), Error);
}

TEST(GbmSegNames, Radii) {
  EXPECT_EQ(parse_radius("0.125", "--d-ex").fraction, 0.125);
  EXPECT_EQ(parse_radius("0.125", "--d-ex").pixels, 0.0);
  EXPECT_EQ(parse_radius("70px", "--d-ex").pixels, 70.0);
  EXPECT_EQ(parse_radius("70px", "--d-ex").fraction, 0.0);
  for (const char* bad : {"", "px", "-1", "0.1x", "abc", "nanpx", "inf"}) {
    try {
      parse_radius(bad, "--d-sp-pos");
      ADD_FAILURE() << "no error for '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--d-sp-pos"), std::string::npos) << e.what();
    }
  }
}
