// nephroseg/gbmseg/prompts_json.h: JSON views of the prompt generation (for saving every
// stage next to a segmentation, or for comparing runs). Include <nlohmann/json.hpp> to
// use the returned values.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "nephroseg/gbmseg/prompts.h"

namespace nephroseg::gbmseg {

/// Every stage of `result`, with keys named after the golden files of
/// shared/golden/gbmseg (ref_fg_idx, fwd_fg_argmin, bwd_fg_kept, hard_h1_fg,
/// pts_pos_initial, ape_neg_exclusive, final_pos, ...). Points are [[x, y], ...] in
/// pixels of the working image; patch lists are integer arrays; plus "size", "grid",
/// "patch_size", "hard_h1_threshold", "pos_fallback_used", "neg_fallback_used",
/// "warnings".
nlohmann::json prompt_result_to_json(const PromptResult& result);

/// The options with the radii resolved to pixels (for run records).
nlohmann::json prompt_options_to_json(const PromptOptions& options);

}  // namespace nephroseg::gbmseg
