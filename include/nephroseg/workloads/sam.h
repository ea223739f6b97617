// nephroseg/workloads/sam.h: SAM / MedSAM over images with point, box and mask prompts
// (`nephroseg sam` and `nephroseg medsam`, Python's sam_batch): one result.json schema
// for both models.
//
//   workloads::SamBatchOptions o;
//   o.images = {"slides/"};  o.out_dir = "out";  o.checkpoint = "sam_vit_b_01ec64.pth";
//   sam::set_box(o.prompt, {10, 20, 300, 260}, "box");          // the default prompt
//   o.prompts_file = "prompts.json";                              // per-image prompts
//   workloads::SamBatchResult r = workloads::run_sam_batch(o, sink);
//
// Per-image prompts (prompts_file, sam/prompts_file.h) map an image's file name, stem
// or path as given to its prompts; images not listed use `prompt`. Every image and
// prompt is checked (readable, inside the image, fits the model) before the model is
// loaded.
//
// Files, each written atomically, in out_dir for one image and in out_dir/<stem>/ for
// several (two images with one stem are an error):
//   mask.png                 the best mask (highest predicted IoU), 0/255
//   masks/mask_<k>.png       every mask the model returned
//   low_res_logits.npy       float32 [k, 256, 256]: a mask_input for the next prompt
//   overlay.png              best mask (cyan), points (+ green, - red), box (yellow)
//   result.json              image, model {type, checkpoint, img_size, preprocess},
//                            original_size, input_size, prompt, iou_predictions,
//                            best_index, mask_areas_px, files, timings_s {encode,
//                            decode}, precision
// and, for several images or a shard, out_dir/run.json (run.shard-K-of-N.json):
// core/batch_record.h, command "sam", per image best_index and best_iou.
// With `resume`, images whose result.json exists are skipped (status skipped).
//
// Automatic masks (`automask`, `nephroseg sam --auto`): segment-anything's generator
// (sam/automask.h, run with `automask_options`) instead of prompts; prompt and
// prompts_file must then be empty, and the model must take point prompts (not MedSAM).
// Files per image, in the same folders, each written atomically:
//   masks/mask_<k>.png       every generated mask, 0/255, k in the generator's order
//   labels.png               label image: mask k has label k + 1, 0 = background; where
//                            masks overlap the one with the highest predicted IoU wins
//                            (ties: the lower k); 8-bit up to 255 masks, else 16-bit
//   masks.json               one record per mask, in order: index, label, file, area,
//                            bbox [x, y, w, h], predicted_iou, stability_score,
//                            point_coords [[x, y]], crop_box [x, y, w, h]
//                            (segment-anything's record fields and shapes)
//   masks.geojson            FeatureCollection (io/geojson.h): each mask's outline
//                            traced on its own (overlaps kept), Label k + 1
//   overlay.png              the label image tinted over the image
//   result.json              image, model, original_size, mode "automask", automask
//                            (the options), mask_count, files, timings_s {generate},
//                            precision (written last: what resume looks for)
// run.json's per-image entry then holds mask_count.
//
// Events: kItemFinished per image (its progress line; skipped images with an empty
// line). Thread safety: one run per out_dir at a time.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "nephroseg/core/shard.h"
#include "nephroseg/sam/automask.h"
#include "nephroseg/sam/prompts_file.h"
#include "nephroseg/sam/sam.h"
#include "nephroseg/workloads/workload.h"

namespace nephroseg::workloads {

struct SamBatchOptions {
  std::vector<std::string> images;   ///< image files or folders (io::list_inputs), in order
  std::string out_dir;               ///< created when missing
  std::string checkpoint;            ///< official .pth (SAM vit_b/l/h or MedSAM)
  std::string model_type = "vit_b";  ///< vit_b | vit_l | vit_h | medsam (sam::SamConfig::preset)
  std::string model_config;          ///< architecture JSON instead of model_type ("" = none)
  /// Overrides the config's pre/post-processing (`nephroseg medsam` forces kMedSam).
  std::optional<sam::SamPreprocess> preprocess;
  ModelPrecision precision;
  sam::PromptSpec prompt;    ///< for images prompts_file does not list
  std::string prompts_file;  ///< "" = none
  bool resume = false;       ///< skip images whose result.json exists
  Shard shard;               ///< whole batch by default
  bool automask = false;     ///< automatic masks instead of prompts (see above)
  sam::AutomaskOptions automask_options;  ///< the generator's options (with `automask`)
};

struct SamBatchResult {
  size_t inputs_total = 0;  ///< images before sharding
  int segmented = 0, skipped = 0;
  std::vector<std::string> out_dirs;  ///< of the images segmented, in order
  std::string run_json;               ///< "" when none is written (one image, whole run)
};

/// The model's configuration as `options` select it (preset or JSON, preprocess).
sam::SamConfig sam_batch_config(const SamBatchOptions& options);

/// Runs the batch (see the header comment). Throws nephroseg::Error for bad inputs
/// before anything is written; a checkpoint that does not bind gives the first keys of
/// each list (missing, unexpected, other shape).
SamBatchResult run_sam_batch(const SamBatchOptions& options, const EventSink& events = {});

}  // namespace nephroseg::workloads
