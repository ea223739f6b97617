// nephroseg/gbmseg/prompts_json.h: JSON views of the prompt generation (for saving every
// stage next to a segmentation, or for comparing runs). Include <nlohmann/json.hpp> to
// use the returned values.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>

#include "nephroseg/gbmseg/pipeline.h"
#include "nephroseg/gbmseg/prompt_names.h"
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

/// What a per-target record says about its run (the same for every target of a batch).
struct SegmentRecordContext {
  std::string target_path, target_name;        ///< "target": path, name (the file stem)
  std::string reference_image, reference_mask; ///< "reference": image, mask
  std::string features_name, segmenter_name;   ///< "backends": the backends' name()
  PromptPreset preset = PromptPreset::kAuthorsCode;  ///< "preset" (kPaper with an ablation)
  std::optional<AblationRow> ablation;         ///< "ablation": the row's name, or null
};

/// The `<name>.prompts.json` record of one segmented target (the contract of
/// `nephroseg gbmseg`; tests/backends/test_gbmseg_batch.cpp pins it). Keys:
///   target {path, name, width, height}, reference {image, mask},
///   backends {features, segmenter}, preset, ablation, options (prompt_options_to_json),
///   output {mask: "<name>.png", width, height, mask_resize (canonical name, or
///     "none (working size kept)"), largest_contour, foreground_pixels},
///   segmenter_prompts {frame, points [[x, y]...] (S x S pixels), labels (1/0),
///     points_output_frame (scaled to the written mask)},
///   stages (prompt_result_to_json), warnings, timings {resize_s, features_s, prompts_s,
///     segment_s, postprocess_s, total_s}, version.
nlohmann::json segment_record_to_json(const SegmentRecordContext& context, const SegmentResult& result,
                                      const PromptOptions& options, const PipelineOptions& pipeline_options);

}  // namespace nephroseg::gbmseg
