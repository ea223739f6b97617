// nephroseg/workloads/glomsam_predict.h: GlomSAM over an image or a folder (`nephroseg
// glomsam predict`, Python's glomsam_predict): binary mask, instance labels, QuPath
// GeoJSON and an overlay per image.
//
//   workloads::GlomSamPredictOptions o;
//   o.checkpoint = "best.pth";  o.image = "if_images/";  o.out_dir = "pred";
//   workloads::run_glomsam_predict(o, sink);
//
// Config: GlomSamModel::config_for(checkpoint, config) ("auto": the config stored by
// `glomsam train`, else the official one), then the ablation switches, then
// mask_threshold = threshold. Prompt: `box` (image pixels), or the bounding box of the
// ground-truth mask (box_from_ground_truth, the paper's simulated clinician box), or
// none (the automatic box from the rough mask). patch_size > 0 resizes each image by
// img_size / patch_size before inference and the logits back (as `glomsam train`
// sees its patches).
//
// Files in out_dir for each image <stem> (each atomic; the overlay is written last):
//   <stem>_mask.png     0/255, logits > threshold
//   <stem>_labels.tif   8-connected instances, 16-bit (32 when over 65,535)
//   <stem>.geojson      QuPath objects, class "Glomerulus"
//   <stem>_overlay.png  the mask in red on the image
// and, for a folder or a shard, run.json (run.shard-K-of-N.json; core/batch_record.h,
// command "glomsam-predict", per image objects and foreground_px). With `resume`,
// images whose overlay exists are skipped.
//
// Events: with ground truth, kInfo "PATH: Dice D IoU I recall R"; then kItemFinished
// per image ("PATH: N object(s), T s"), Event::detail = `const GlomSamPredictItem*`.
// Thread safety: one run per out_dir at a time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nephroseg/core/shard.h"
#include "nephroseg/glomsam/glomsam.h"
#include "nephroseg/workloads/workload.h"

namespace nephroseg::workloads {

struct GlomSamPredictOptions {
  std::string checkpoint;              ///< GlomSAM checkpoint (train's best.pth or an official file)
  std::string image;                   ///< an image file or a folder of images
  std::string out_dir;                 ///< created when missing
  std::string config = "auto";         ///< auto | official | tiny | JSON file
  glomsam::AblationSwitches ablation;  ///< on top of the config's own switches
  std::optional<glomsam::Box> box;     ///< prompt in image pixels; none = automatic
  std::string ground_truth;            ///< mask of a single image: Dice and IoU are reported
  bool box_from_ground_truth = false;  ///< box = bounding box of ground_truth (needs it)
  int64_t overlap = 128;               ///< tile overlap for images larger than the model input
  int64_t patch_size = 0;              ///< image pixels per model input side (0 = native scale)
  double threshold = 0.5;              ///< logit threshold (reference 0.5; 0 = sigmoid 0.5)
  ModelPrecision precision;
  bool resume = false;  ///< skip images whose outputs an earlier run completed
  Shard shard;          ///< whole batch by default
};

/// What Event::detail holds for an image's kItemFinished.
struct GlomSamPredictItem {
  std::string path;
  int64_t objects = 0, foreground_px = 0;
  double seconds = 0;
  std::optional<double> dice, iou, recall;  ///< with ground_truth
};

struct GlomSamPredictResult {
  size_t inputs_total = 0;
  std::vector<GlomSamPredictItem> items;  ///< the images segmented, in order
  int skipped = 0;
  std::string run_json;  ///< "" for a single image run whole
};

/// Runs the batch; bad inputs throw nephroseg::Error before anything is written.
GlomSamPredictResult run_glomsam_predict(const GlomSamPredictOptions& options, const EventSink& events = {});

}  // namespace nephroseg::workloads
