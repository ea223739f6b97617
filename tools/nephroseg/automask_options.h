// tools/nephroseg/automask_options.h: the options of SAM's automatic mask generator
// (sam::AutomaskOptions, one option per field), spelt once for every command that runs
// it. Defaults are the struct's own (shown by --help); nothing here repeats one.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "nephroseg/sam/automask.h"

namespace nephroseg::cli {

/// Binds --auto to `automask` and every generator option to its field of `o`.
/// --output-type goes to `output_type` (the caller parses it with
/// sam::automask_output_names()); it starts as the name of o.output_type.
inline void add_automask_options(CLI::App& app, bool& automask, sam::AutomaskOptions& o,
                                 std::string& output_type) {
  const char* group = "Automatic masks (--auto)";
  output_type = sam::automask_output_names().name(o.output_type);
  app.add_flag("--auto", automask,
               "automatic masks: prompt a grid of points (segment-anything's generator) "
               "instead of --point/--box/--prompts")
      ->group(group);
  const auto opt = [&](const char* name, auto& field, const char* help) {
    app.add_option(name, field, help)->capture_default_str()->group(group);
  };
  opt("--points-per-side", o.points_per_side, "grid of N x N point prompts per crop");
  opt("--points-per-batch", o.points_per_batch, "point prompts per decoder pass (memory, not results)");
  opt("--pred-iou-thresh", o.pred_iou_thresh, "keep masks whose predicted IoU exceeds this");
  opt("--stability-score-thresh", o.stability_score_thresh, "keep masks whose stability score exceeds this");
  opt("--stability-score-offset", o.stability_score_offset, "logit offset of the stability score");
  opt("--box-nms-thresh", o.box_nms_thresh, "box IoU of the NMS within a crop");
  opt("--crop-n-layers", o.crop_n_layers, "extra crop layers (layer i: 2^i x 2^i crops)");
  opt("--crop-nms-thresh", o.crop_nms_thresh, "box IoU of the NMS across crops");
  opt("--crop-overlap-ratio", o.crop_overlap_ratio, "overlap of crops, fraction of the image side");
  opt("--crop-n-points-downscale-factor", o.crop_n_points_downscale_factor,
      "crop layer i gets points-per-side / factor^i points per side");
  opt("--min-mask-region-area", o.min_mask_region_area, "> 0: remove islands and fill holes smaller (px)");
  app.add_option("--output-type", output_type,
                 "masks per point and NMS ranking: " + sam::automask_output_names().choices())
      ->capture_default_str()
      ->check(CLI::IsMember(sam::automask_output_names().all_spellings()))
      ->group(group);
  app.add_flag("--include-image-edge", o.include_image_edge,
               std::string("keep masks spanning the whole image, as segment-anything does (otherwise "
                           "dropped, as samapi does); --include-image-edge=false turns it off (default: ") +
                   (o.include_image_edge ? "true" : "false") + ")")
      ->capture_default_str()
      ->group(group);
}

}  // namespace nephroseg::cli
