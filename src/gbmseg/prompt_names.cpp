// Name tables of the GBMSeg presets and option enums.
#include "nephroseg/gbmseg/prompt_names.h"

#include <cmath>
#include <exception>

namespace nephroseg::gbmseg {

const EnumNames<PromptPreset>& prompt_preset_names() {
  static const EnumNames<PromptPreset> t("prompt preset",
                                         {{PromptPreset::kAuthorsCode, "authors-code", {"authors_code"}},
                                          {PromptPreset::kPaper, "paper", {}},
                                          {PromptPreset::kAuthorsC0947, "authors-c0947", {"authors_c0947"}},
                                          {PromptPreset::kAuthors2023, "authors-2023", {"authors_2023"}}});
  return t;
}

const EnumNames<AblationRow>& ablation_row_names() {
  static const EnumNames<AblationRow> t("ablation row", {{AblationRow::kForwardOnly, "forward", {}},
                                                         {AblationRow::kBackward, "backward", {}},
                                                         {AblationRow::kExclusive, "exclusive", {}},
                                                         {AblationRow::kSparse, "sparse", {}},
                                                         {AblationRow::kHard, "hard", {}}});
  return t;
}

const EnumNames<PatchRule>& patch_rule_names() {
  static const EnumNames<PatchRule> t("patch rule", {{PatchRule::kAllNonZero, "all_nonzero", {"all-nonzero"}},
                                                     {PatchRule::kThreshold, "threshold", {}}});
  return t;
}

const EnumNames<HardMode>& hard_mode_names() {
  static const EnumNames<HardMode> t("hard mode",
                                     {{HardMode::kOff, "off", {}}, {HardMode::kH1, "h1", {}}, {HardMode::kH2, "h2", {}}});
  return t;
}

const EnumNames<PointOrder>& point_order_names() {
  static const EnumNames<PointOrder> t("point order", {{PointOrder::kRaster, "raster", {}},
                                                      {PointOrder::kCPythonSet, "cpython_set", {"cpython-set"}}});
  return t;
}

const EnumNames<ApeOrder>& ape_order_names() {
  static const EnumNames<ApeOrder> t("APE order", {{ApeOrder::kHead, "head", {}}, {ApeOrder::k2023, "2023", {}}});
  return t;
}

const EnumNames<MaskResize>& mask_resize_names() {
  static const EnumNames<MaskResize> t("mask resize",
                                       {{MaskResize::kNearest, "nearest", {}},
                                        {MaskResize::kBilinearThreshold, "bilinear-threshold", {"bilinear"}}});
  return t;
}

PromptOptions prompt_options_for(PromptPreset preset) {
  switch (preset) {
    case PromptPreset::kAuthorsCode: return PromptOptions::authors_code();
    case PromptPreset::kPaper: return PromptOptions::paper();
    case PromptPreset::kAuthorsC0947: return PromptOptions::authors_c0947();
    case PromptPreset::kAuthors2023: return PromptOptions::authors_2023();
  }
  NEPHRO_FAIL("internal: prompt preset ", static_cast<int>(preset), " has no options");
}

PromptOptions prompt_options_for(PromptPreset preset, std::optional<AblationRow> ablation) {
  if (!ablation) return prompt_options_for(preset);
  NEPHRO_CHECK(preset == PromptPreset::kPaper, "ablation '", ablation_row_names().name(*ablation),
               "' builds on the paper preset (Table 1 rows); it cannot be combined with preset ",
               prompt_preset_names().name(preset));
  return PromptOptions::ablation(*ablation);
}

Radius parse_radius(const std::string& text, const std::string& field) {
  std::string t = text;
  bool pixels = false;
  if (t.size() > 2 && t.compare(t.size() - 2, 2, "px") == 0) {
    pixels = true;
    t = t.substr(0, t.size() - 2);
  }
  double v = 0.0;
  size_t used = 0;
  try {
    v = std::stod(t, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  NEPHRO_CHECK(used == t.size() && !t.empty() && std::isfinite(v) && v >= 0, field, " '", text,
               "' is not a radius (a fraction of the working size such as 0.125, or pixels "
               "such as 70px)");
  return pixels ? Radius::absolute(v) : Radius::of_size(v);
}

}  // namespace nephroseg::gbmseg
