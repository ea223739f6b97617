// nephroseg/gbmseg/prompt_overrides.h: GBMSeg prompt options as "a preset (or an
// ablation row) plus the fields a caller changed", the way `nephroseg gbmseg` and the
// Python module take them.
//
//   gbmseg::PromptOverrides o;
//   o.preset = "authors-code";   o.size = 280;   o.hard = "h2";
//   gbmseg::PromptOptions opt = gbmseg::resolve_prompt_options(o);
//
// Names are those of prompt_names.h (presets, ablation rows, patch rules, hard modes,
// point orders, APE orders); radii are parse_radius texts ("0.125" = fraction of S,
// "70px" = pixels). Every unset field keeps the preset's value.
#pragma once

#include <optional>
#include <string>

#include "nephroseg/gbmseg/prompt_names.h"
#include "nephroseg/gbmseg/prompts.h"

namespace nephroseg::gbmseg {

struct PromptOverrides {
  /// "" = "authors-code", or "paper" when an ablation row is given.
  std::string preset;
  std::string ablation;  ///< "" = none
  std::optional<int> size;
  std::optional<std::string> patch_rule;
  std::optional<int> patch_threshold;
  std::optional<bool> include_last_row_col;
  /// "off" | "h1" | "h2": also switches hard sampling on (off: and H2 merging off).
  std::optional<std::string> hard;
  std::optional<std::string> order, ape_order;
  std::optional<std::string> d_sp_pos, d_sp_neg, d_ex, d_sp_hard;
  std::optional<bool> scale_fallbacks;
  /// Errors name the fields as command-line options ("--d-sp-pos") instead of keyword
  /// arguments ("d_sp_pos").
  bool option_spelling = false;
};

/// The preset's options with the overrides applied. Throws nephroseg::Error naming the
/// field for unknown names, bad radii, and a size that is not a positive multiple of
/// the patch size. `preset_out` / `ablation_out` (optional) receive the parsed choice.
PromptOptions resolve_prompt_options(const PromptOverrides& overrides,
                                     PromptPreset* preset_out = nullptr,
                                     std::optional<AblationRow>* ablation_out = nullptr);

}  // namespace nephroseg::gbmseg
