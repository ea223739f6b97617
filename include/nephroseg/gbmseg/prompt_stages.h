// nephroseg/gbmseg/prompt_stages.h: every stage of a PromptResult under its record name,
// in record order: the one list that <name>.prompts.json's "stages"
// (gbmseg/prompts_json.h) and Python's GbmSeg.segment()["prompts"] both walk.
//
//   gbmseg::for_each_prompt_stage(result, [&](const char* name, const auto& value) {
//     // value: int, double, bool, PatchIndices, Points or std::vector<std::string>
//   });
//
// Thread safety: reads `result` only.
#pragma once

#include "nephroseg/gbmseg/prompts.h"

namespace nephroseg::gbmseg {

template <typename Visitor>
void for_each_prompt_stage(const PromptResult& r, Visitor&& v) {
  v("size", r.size);
  v("grid", r.grid);
  v("patch_size", r.patch_size);
  v("ref_fg_idx", r.patch_sets.fg);
  v("ref_bg_idx", r.patch_sets.bg);
  v("fwd_fg_argmin", r.fg.forward);
  v("fwd_fg_argmax", r.fg.farthest);
  v("fwd_bg_argmin", r.bg.forward);
  v("fwd_fg_pts", r.fwd_fg_pts);
  v("fwd_bg_pts", r.fwd_bg_pts);
  v("bwd_fg_back", r.fg.back);
  v("bwd_bg_back", r.bg.back);
  v("bwd_fg_kept", r.fg.kept);
  v("bwd_bg_kept", r.bg.kept);
  v("bwd_pos_pts", r.bwd_pos_pts);
  v("bwd_neg_pts", r.bwd_neg_pts);
  v("hard_h1_fg", r.fg.hard_h1);
  v("hard_h1_pts", r.hard_h1_pts);
  v("hard_h1_threshold", r.fg.h1_threshold);
  v("hard_h2_fg", r.fg.hard_h2);
  v("hard_h2_pts", r.hard_h2_pts);
  v("pts_pos_initial", r.pos_initial);
  v("pts_neg_initial", r.neg_initial);
  v("pts_hard_initial", r.hard_initial);
  v("ape_in_pos", r.ape.in_pos);
  v("ape_in_neg", r.ape.in_neg);
  v("ape_in_hard", r.ape.in_hard);
  v("ape_hard_sparse", r.ape.hard_sparse);
  v("ape_neg_exclusive", r.ape.neg_exclusive);
  v("ape_pos_sparse", r.ape.pos_sparse);
  v("ape_neg_sparse", r.ape.neg_sparse);
  v("final_pos", r.ape.final_pos);
  v("final_neg", r.ape.final_neg);
  v("pos_fallback_used", r.ape.pos_fallback_used);
  v("neg_fallback_used", r.ape.neg_fallback_used);
  v("warnings", r.warnings);
}

}  // namespace nephroseg::gbmseg
