#include "nephroseg/gbmseg/prompt_overrides.h"

#include "nephroseg/core/error.h"

namespace nephroseg::gbmseg {

namespace {

// "d_sp_pos", or "--d-sp-pos" with option_spelling.
std::string field(const PromptOverrides& o, std::string name) {
  if (!o.option_spelling) return name;
  for (char& c : name)
    if (c == '_') c = '-';
  return "--" + name;
}

}  // namespace

PromptOptions resolve_prompt_options(const PromptOverrides& o, PromptPreset* preset_out,
                                     std::optional<AblationRow>* ablation_out) {
  std::optional<AblationRow> ablation;
  if (!o.ablation.empty()) ablation = ablation_row_names().parse(o.ablation, field(o, "ablation"));
  // An ablation row is defined relative to the paper's options unless a preset is named.
  const PromptPreset preset = o.preset.empty()
                                  ? (ablation ? PromptPreset::kPaper : PromptPreset::kAuthorsCode)
                                  : prompt_preset_names().parse(o.preset, field(o, "preset"));
  PromptOptions opt = prompt_options_for(preset, ablation);
  if (o.size) opt.size = *o.size;
  if (o.patch_rule) opt.patch_rule = patch_rule_names().parse(*o.patch_rule, field(o, "patch_rule"));
  if (o.patch_threshold) opt.patch_threshold = *o.patch_threshold;
  if (o.include_last_row_col) opt.skip_last_row_col = !*o.include_last_row_col;
  if (o.hard) {
    opt.hard_mode = hard_mode_names().parse(*o.hard, field(o, "hard"));
    opt.hard_sample = opt.hard_mode != HardMode::kOff;
    if (opt.hard_mode == HardMode::kOff) opt.merge_h2_into_negatives = false;
  }
  if (o.order) opt.order = point_order_names().parse(*o.order, field(o, "order"));
  if (o.ape_order) opt.ape_order = ape_order_names().parse(*o.ape_order, field(o, "ape_order"));
  if (o.d_sp_pos) opt.d_sp_pos = parse_radius(*o.d_sp_pos, field(o, "d_sp_pos"));
  if (o.d_sp_neg) opt.d_sp_neg = parse_radius(*o.d_sp_neg, field(o, "d_sp_neg"));
  if (o.d_ex) opt.d_ex = parse_radius(*o.d_ex, field(o, "d_ex"));
  if (o.d_sp_hard) opt.d_sp_hard = parse_radius(*o.d_sp_hard, field(o, "d_sp_hard"));
  if (o.scale_fallbacks) opt.scale_fallbacks = *o.scale_fallbacks;
  NEPHRO_CHECK(opt.size > 0 && opt.size % opt.patch_size == 0, field(o, "size"), " ", opt.size,
               " must be a positive multiple of the patch size ", opt.patch_size);
  if (preset_out) *preset_out = preset;
  if (ablation_out) *ablation_out = ablation;
  return opt;
}

}  // namespace nephroseg::gbmseg
