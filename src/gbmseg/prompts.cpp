// Top level of the GBMSeg prompt generation: option presets and generate_prompts
// (spec §1, §8, §12-§14).
#include <cmath>

#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/gbmseg/prompts.h"

namespace nephroseg::gbmseg {

PatchSetOptions PromptOptions::patch_set_options() const {
  PatchSetOptions o;
  o.patch_size = patch_size;
  o.rule = patch_rule;
  o.threshold = patch_threshold;
  o.skip_last_row_col = skip_last_row_col;
  return o;
}

ApeOptions PromptOptions::ape_options() const {
  ApeOptions o;
  o.d_sp_pos = d_sp_pos.to_pixels(size);
  o.d_sp_neg = d_sp_neg.to_pixels(size);
  o.d_ex = d_ex.to_pixels(size);
  o.d_sp_hard = d_sp_hard.to_pixels(size);
  o.exclusive = exclusive;
  o.sparse = sparse;
  o.hard_sample = hard_sample;
  o.order = ape_order;
  if (scale_fallbacks) {
    const double f = static_cast<double>(size) / 512.0;
    const auto scaled = [f](int v) { return static_cast<int32_t>(std::lround(v * f)); };
    o.pos_fallback = Point{scaled(250), scaled(250)};
    o.neg_fallback = Point{scaled(10), scaled(10)};
  }
  return o;
}

PromptOptions PromptOptions::authors_code(PointOrder order) {
  PromptOptions o;  // the struct defaults are the HEAD configuration
  o.size = 560;
  o.order = order;
  return o;
}

PromptOptions PromptOptions::authors_c0947(PointOrder order) {
  PromptOptions o = authors_code(order);
  o.merge_h2_into_negatives = true;
  o.hard_sample = true;
  return o;
}

PromptOptions PromptOptions::authors_2023(PointOrder order) {
  PromptOptions o = authors_code(order);
  o.ape_order = ApeOrder::k2023;
  o.d_sp_pos = Radius::of_size(0.0);     // 0 px at 512
  o.d_sp_neg = Radius::of_size(0.125);   // 64 px at 512
  o.d_sp_hard = Radius::of_size(0.125);  // 64 px at 512
  o.d_ex = Radius::of_size(0.25);        // 128 px at 512
  o.hard_mode = HardMode::kH2;
  o.hard_sample = true;
  return o;
}

PromptOptions PromptOptions::paper() {
  PromptOptions o;
  o.size = 560;
  o.order = PointOrder::kRaster;
  o.ape_order = ApeOrder::kHead;
  o.d_ex = Radius::of_size(0.25);
  o.d_sp_pos = Radius::of_size(0.0);
  o.d_sp_neg = Radius::of_size(0.125);
  o.d_sp_hard = Radius::of_size(0.125);
  o.hard_mode = HardMode::kH1;
  o.hard_sample = true;
  return o;
}

PromptOptions PromptOptions::ablation(AblationRow row) {
  PromptOptions o = paper();
  const int level = static_cast<int>(row);
  o.backward = level >= static_cast<int>(AblationRow::kBackward);
  o.exclusive = level >= static_cast<int>(AblationRow::kExclusive);
  o.sparse = level >= static_cast<int>(AblationRow::kSparse);
  if (level < static_cast<int>(AblationRow::kHard)) {
    o.hard_mode = HardMode::kOff;
    o.hard_sample = false;
  }
  return o;
}

namespace {

void warn(PromptResult& r, std::string message) {
  log_warn("gbmseg prompts: ", message);
  r.warnings.push_back(std::move(message));
}

}  // namespace

// Ref: feature_matching/generate_points.py::generate (+ main.py's APE call)
PromptResult generate_prompts_from_matches(const PatchSets& patch_sets,
                                           const FeatureMatches& matches,
                                           const PromptOptions& options) {
  const int grid = patch_sets.grid;
  const int p = options.patch_size;
  const int64_t n = static_cast<int64_t>(grid) * grid;
  NEPHRO_CHECK(grid == options.grid(), "generate_prompts: patch sets are for a ", grid, "x",
               grid, " grid but the options give ", options.grid(), " (size ", options.size,
               ", patch ", p, ")");
  // Several pooled references (GbmSegPipeline::add_reference) give k * G*G reference rows.
  NEPHRO_CHECK(matches.num_ref > 0 && matches.num_ref % n == 0 && matches.num_tgt == n,
               "generate_prompts: feature matches cover ", matches.num_ref, " reference and ",
               matches.num_tgt, " target patches, expected ", n, " (", grid, "x", grid,
               "; k x ", n, " reference patches for k pooled references)");

  PromptResult r;
  r.size = options.size;
  r.grid = grid;
  r.patch_size = p;
  r.patch_sets = patch_sets;
  if (patch_sets.fg.empty()) {
    warn(r, "the reference mask has no foreground patch (the authors' code crashes here);"
            " no positive candidates");
  }
  if (patch_sets.bg.empty()) {
    warn(r, "the reference mask has no background patch (the authors' code crashes here);"
            " no negative candidates");
  }
  r.fg = match_set(matches, patch_sets.fg);
  r.bg = match_set(matches, patch_sets.bg);
  if (!patch_sets.fg.empty() && r.fg.no_rejection) {
    warn(r, "backward matching rejected no foreground match (the authors' backward_matching"
            " raises here); the H1 hard list is empty");
  }
  if (!patch_sets.bg.empty() && r.bg.no_rejection) {
    warn(r, "backward matching rejected no background match (the authors' backward_matching"
            " raises here)");
  }

  r.fwd_fg_pts = patch_centres(r.fg.forward, grid, p);
  r.fwd_bg_pts = patch_centres(r.bg.forward, grid, p);
  r.bwd_pos_pts = patch_centres(r.fg.kept, grid, p);
  r.bwd_neg_pts = patch_centres(r.bg.kept, grid, p);
  r.hard_h1_pts = patch_centres(r.fg.hard_h1, grid, p);
  r.hard_h2_pts = patch_centres(r.fg.hard_h2, grid, p);

  // Without the backward filter (ablation "forward only") every forward match counts.
  Points pos_all = options.backward ? r.bwd_pos_pts : r.fwd_fg_pts;
  Points neg_all = options.backward ? r.bwd_neg_pts : r.fwd_bg_pts;
  if (options.merge_h2_into_negatives) {
    // Commit 0947e7c: the H2 patches join the negative patch list before de-duplication,
    // in FRONT of the kept background matches (this insertion order is what reproduces
    // the authors' set order; checked on golden cases 01-03).
    neg_all.insert(neg_all.begin(), r.hard_h2_pts.begin(), r.hard_h2_pts.end());
  }
  r.pos_initial = deduplicate_points(pos_all, options.order);
  r.neg_initial = deduplicate_points(neg_all, options.order);
  switch (options.hard_mode) {
    case HardMode::kOff: break;
    case HardMode::kH1: r.hard_initial = r.hard_h1_pts; break;
    case HardMode::kH2: r.hard_initial = r.hard_h2_pts; break;
  }
  if (r.pos_initial.empty()) {
    warn(r, "no positive prompt survived matching (the authors' APE crashes here);"
            " exclusive sampling keeps every negative");
  }

  r.ape = automatic_prompt_engineering(r.pos_initial, r.neg_initial, r.hard_initial,
                                       options.ape_options());
  if (r.ape.pos_fallback_used) {
    warn(r, detail::concat("no positive prompt left: using the fallback point (",
                           r.ape.final_pos.front().x, ", ", r.ape.final_pos.front().y, ")"));
  }
  if (r.ape.neg_fallback_used) {
    warn(r, detail::concat("no negative prompt left: using the fallback point (",
                           r.ape.final_neg.front().x, ", ", r.ape.final_neg.front().y, ")"));
  }
  return r;
}

PromptResult generate_prompts(const at::Tensor& ref_features, const at::Tensor& tgt_features,
                              int grid, const cv::Mat& ref_mask, const PromptOptions& options) {
  NEPHRO_CHECK(grid == options.grid(), "generate_prompts: grid ", grid,
               " does not match the options (size ", options.size, " / patch ",
               options.patch_size, " = ", options.grid(), ")");
  NEPHRO_CHECK(ref_mask.rows == options.size && ref_mask.cols == options.size,
               "generate_prompts: the reference mask is ", ref_mask.rows, "x", ref_mask.cols,
               ", expected the working size ", options.size, "x", options.size);
  const int64_t n = static_cast<int64_t>(grid) * grid;
  NEPHRO_CHECK(ref_features.dim() == 2 && ref_features.size(0) == n,
               "generate_prompts: reference features must be [", n, ", D], got ",
               ref_features.sizes());
  NEPHRO_CHECK(tgt_features.dim() == 2 && tgt_features.size(0) == n,
               "generate_prompts: target features must be [", n, ", D], got ",
               tgt_features.sizes());
  const PatchSets sets = reference_patch_sets(ref_mask, options.patch_set_options());
  const FeatureMatches matches = match_features(ref_features, tgt_features);
  return generate_prompts_from_matches(sets, matches, options);
}

}  // namespace nephroseg::gbmseg
