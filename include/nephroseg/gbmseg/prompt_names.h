// nephroseg/gbmseg/prompt_names.h: the names of the prompt-engineering presets, the
// ablation rows and every enum of PromptOptions / PipelineOptions, one EnumNames table
// each (core/enum_names.h). The canonical name is what the output files write
// (prompts.json, run.json); the CLI's older spellings are accepted as aliases:
//
//   preset        authors-code | paper | authors-c0947 | authors-2023  (aliases with _)
//   ablation      forward | backward | exclusive | sparse | hard       (AblationRow)
//   patch rule    all_nonzero (alias all-nonzero) | threshold
//   hard mode     off | h1 | h2
//   point order   raster | cpython_set (alias cpython-set)
//   APE order     head | 2023
//   mask resize   nearest | bilinear-threshold (alias bilinear)
//
//   PromptOptions o = prompt_options_for(prompt_preset_names().parse("paper"));
//   o.d_ex = parse_radius("100px", "--d-ex");
//
// Thread safety: the tables are immutable; the functions are pure.
#pragma once

#include <optional>
#include <string>

#include "nephroseg/core/enum_names.h"
#include "nephroseg/gbmseg/pipeline.h"
#include "nephroseg/gbmseg/prompts.h"

namespace nephroseg::gbmseg {

/// The named starting points of PromptOptions (see the static presets in prompts.h).
enum class PromptPreset { kAuthorsCode, kPaper, kAuthorsC0947, kAuthors2023 };

const EnumNames<PromptPreset>& prompt_preset_names();
const EnumNames<AblationRow>& ablation_row_names();
const EnumNames<PatchRule>& patch_rule_names();
const EnumNames<HardMode>& hard_mode_names();
const EnumNames<PointOrder>& point_order_names();
const EnumNames<ApeOrder>& ape_order_names();
const EnumNames<MaskResize>& mask_resize_names();

/// The preset's options (PromptOptions::authors_code(), paper(), authors_c0947(),
/// authors_2023(); raster point order).
PromptOptions prompt_options_for(PromptPreset preset);
/// An ablation row builds on the paper preset: `preset` must be kPaper when `ablation`
/// is given (throws nephroseg::Error otherwise). Returns PromptOptions::ablation(row) or
/// prompt_options_for(preset).
PromptOptions prompt_options_for(PromptPreset preset, std::optional<AblationRow> ablation);

/// A radius written as a fraction of the working size ("0.125") or as pixels ("70px").
/// Throws nephroseg::Error naming `field` for anything else (negative, empty, trailing
/// characters, not finite).
Radius parse_radius(const std::string& text, const std::string& field);

}  // namespace nephroseg::gbmseg
