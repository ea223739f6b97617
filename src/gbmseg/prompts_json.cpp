// JSON views of PromptResult / PromptOptions.
#include "nephroseg/gbmseg/prompts_json.h"

#include <type_traits>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "nephroseg/gbmseg/prompt_stages.h"

namespace nephroseg::gbmseg {

namespace {

nlohmann::json points_json(const Points& points) {
  nlohmann::json out = nlohmann::json::array();
  for (const Point& p : points) out.push_back({p.x, p.y});
  return out;
}

nlohmann::json cv_points_json(const std::vector<cv::Point2f>& pts, double sx = 1.0, double sy = 1.0) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& q : pts) a.push_back({q.x * sx, q.y * sy});
  return a;
}

}  // namespace

nlohmann::json prompt_result_to_json(const PromptResult& r) {
  nlohmann::json j;
  for_each_prompt_stage(r, [&j](const char* name, const auto& value) {
    if constexpr (std::is_same_v<std::decay_t<decltype(value)>, Points>) {
      j[name] = points_json(value);
    } else {
      j[name] = value;
    }
  });
  return j;
}

nlohmann::json prompt_options_to_json(const PromptOptions& o) {
  const ApeOptions a = o.ape_options();
  nlohmann::json j;
  j["size"] = o.size;
  j["patch_size"] = o.patch_size;
  j["grid"] = o.grid();
  j["patch_rule"] = patch_rule_names().name(o.patch_rule);
  j["patch_threshold"] = o.patch_threshold;
  j["skip_last_row_col"] = o.skip_last_row_col;
  j["backward"] = o.backward;
  j["exclusive"] = o.exclusive;
  j["sparse"] = o.sparse;
  j["hard_mode"] = hard_mode_names().name(o.hard_mode);
  j["hard_sample"] = o.hard_sample;
  j["merge_h2_into_negatives"] = o.merge_h2_into_negatives;
  j["order"] = point_order_names().name(o.order);
  j["ape_order"] = ape_order_names().name(o.ape_order);
  j["d_sp_pos_px"] = a.d_sp_pos;
  j["d_sp_neg_px"] = a.d_sp_neg;
  j["d_ex_px"] = a.d_ex;
  j["d_sp_hard_px"] = a.d_sp_hard;
  j["pos_fallback"] = {a.pos_fallback.x, a.pos_fallback.y};
  j["neg_fallback"] = {a.neg_fallback.x, a.neg_fallback.y};
  return j;
}

nlohmann::json segment_record_to_json(const SegmentRecordContext& c, const SegmentResult& r,
                                      const PromptOptions& options, const PipelineOptions& popt) {
  const double sx = static_cast<double>(r.mask.cols) / r.mask_working.cols;
  const double sy = static_cast<double>(r.mask.rows) / r.mask_working.rows;
  nlohmann::json j;
  j["target"] = {{"path", c.target_path}, {"name", c.target_name}, {"width", r.original_width},
                 {"height", r.original_height}};
  j["reference"] = {{"image", c.reference_image}, {"mask", c.reference_mask}};
  j["backends"] = {{"features", c.features_name}, {"segmenter", c.segmenter_name}};
  j["preset"] = prompt_preset_names().name(c.preset);
  j["ablation"] = c.ablation ? nlohmann::json(ablation_row_names().name(*c.ablation)) : nlohmann::json();
  j["options"] = prompt_options_to_json(options);
  j["output"] = {{"mask", c.target_name + ".png"},
                 {"width", r.mask.cols},
                 {"height", r.mask.rows},
                 {"mask_resize", popt.resize_to_original ? mask_resize_names().name(popt.mask_resize)
                                                         : std::string("none (working size kept)")},
                 {"largest_contour", popt.largest_contour},
                 {"foreground_pixels", cv::countNonZero(r.mask)}};
  nlohmann::json sam;
  sam["frame"] = "pixels of the working S x S image (label 1 = positive, 0 = negative)";
  sam["points"] = cv_points_json(r.points);
  sam["labels"] = r.labels;
  sam["points_output_frame"] = cv_points_json(r.points, sx, sy);
  j["segmenter_prompts"] = sam;
  j["stages"] = prompt_result_to_json(r.prompts);
  j["warnings"] = r.prompts.warnings;
  const SegmentTimings& t = r.timings;
  j["timings"] = {{"resize_s", t.resize},   {"features_s", t.features},       {"prompts_s", t.prompts},
                  {"segment_s", t.segment}, {"postprocess_s", t.postprocess}, {"total_s", t.total}};
  j["version"] = "nephroseg 0.1.0";
  return j;
}

}  // namespace nephroseg::gbmseg
