// JSON views of PromptResult / PromptOptions.
#include "nephroseg/gbmseg/prompts_json.h"

#include <nlohmann/json.hpp>

namespace nephroseg::gbmseg {

namespace {

nlohmann::json points_json(const Points& points) {
  nlohmann::json out = nlohmann::json::array();
  for (const Point& p : points) out.push_back({p.x, p.y});
  return out;
}

const char* order_name(PointOrder o) {
  return o == PointOrder::kRaster ? "raster" : "cpython_set";
}
const char* hard_name(HardMode h) {
  switch (h) {
    case HardMode::kOff: return "off";
    case HardMode::kH1: return "h1";
    case HardMode::kH2: return "h2";
  }
  return "?";
}

}  // namespace

nlohmann::json prompt_result_to_json(const PromptResult& r) {
  nlohmann::json j;
  j["size"] = r.size;
  j["grid"] = r.grid;
  j["patch_size"] = r.patch_size;
  j["ref_fg_idx"] = r.patch_sets.fg;
  j["ref_bg_idx"] = r.patch_sets.bg;
  j["fwd_fg_argmin"] = r.fg.forward;
  j["fwd_fg_argmax"] = r.fg.farthest;
  j["fwd_bg_argmin"] = r.bg.forward;
  j["fwd_fg_pts"] = points_json(r.fwd_fg_pts);
  j["fwd_bg_pts"] = points_json(r.fwd_bg_pts);
  j["bwd_fg_back"] = r.fg.back;
  j["bwd_bg_back"] = r.bg.back;
  j["bwd_fg_kept"] = r.fg.kept;
  j["bwd_bg_kept"] = r.bg.kept;
  j["bwd_pos_pts"] = points_json(r.bwd_pos_pts);
  j["bwd_neg_pts"] = points_json(r.bwd_neg_pts);
  j["hard_h1_fg"] = r.fg.hard_h1;
  j["hard_h1_pts"] = points_json(r.hard_h1_pts);
  j["hard_h1_threshold"] = r.fg.h1_threshold;
  j["hard_h2_fg"] = r.fg.hard_h2;
  j["hard_h2_pts"] = points_json(r.hard_h2_pts);
  j["pts_pos_initial"] = points_json(r.pos_initial);
  j["pts_neg_initial"] = points_json(r.neg_initial);
  j["pts_hard_initial"] = points_json(r.hard_initial);
  j["ape_in_pos"] = points_json(r.ape.in_pos);
  j["ape_in_neg"] = points_json(r.ape.in_neg);
  j["ape_in_hard"] = points_json(r.ape.in_hard);
  j["ape_hard_sparse"] = points_json(r.ape.hard_sparse);
  j["ape_neg_exclusive"] = points_json(r.ape.neg_exclusive);
  j["ape_pos_sparse"] = points_json(r.ape.pos_sparse);
  j["ape_neg_sparse"] = points_json(r.ape.neg_sparse);
  j["final_pos"] = points_json(r.ape.final_pos);
  j["final_neg"] = points_json(r.ape.final_neg);
  j["pos_fallback_used"] = r.ape.pos_fallback_used;
  j["neg_fallback_used"] = r.ape.neg_fallback_used;
  j["warnings"] = r.warnings;
  return j;
}

nlohmann::json prompt_options_to_json(const PromptOptions& o) {
  const ApeOptions a = o.ape_options();
  nlohmann::json j;
  j["size"] = o.size;
  j["patch_size"] = o.patch_size;
  j["grid"] = o.grid();
  j["patch_rule"] = o.patch_rule == PatchRule::kAllNonZero ? "all_nonzero" : "threshold";
  j["patch_threshold"] = o.patch_threshold;
  j["skip_last_row_col"] = o.skip_last_row_col;
  j["backward"] = o.backward;
  j["exclusive"] = o.exclusive;
  j["sparse"] = o.sparse;
  j["hard_mode"] = hard_name(o.hard_mode);
  j["hard_sample"] = o.hard_sample;
  j["merge_h2_into_negatives"] = o.merge_h2_into_negatives;
  j["order"] = order_name(o.order);
  j["ape_order"] = o.ape_order == ApeOrder::kHead ? "head" : "2023";
  j["d_sp_pos_px"] = a.d_sp_pos;
  j["d_sp_neg_px"] = a.d_sp_neg;
  j["d_ex_px"] = a.d_ex;
  j["d_sp_hard_px"] = a.d_sp_hard;
  j["pos_fallback"] = {a.pos_fallback.x, a.pos_fallback.y};
  j["neg_fallback"] = {a.neg_fallback.x, a.neg_fallback.y};
  return j;
}

}  // namespace nephroseg::gbmseg
