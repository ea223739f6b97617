// nephroseg/workloads/glomsam_protocol.h: the GlomSAM paper's evaluation protocol (Tables 2-4)
// as one library call: image sets x annotator levels x models, with box prompts
// simulated from each annotator's masks, per-image metrics, summaries, box plots, an
// HTML report, CSV and JSON. `nephroseg glomsam eval` is a thin front end.
//
//   workloads::ProtocolOptions o;
//   o.sets   = {{"20x", "data/20x/images"}};
//   o.truths = {{"primary", "data/20x/primary"}, {"advanced", "data/20x/advanced"}};
//   o.models = {workloads::parse_model_spec("glomsam=best.pth"),
//               workloads::parse_model_spec("medsam=medsam_vit_b.pth")};
//   o.out_dir = "eval_20x";
//   workloads::ProtocolRun run = workloads::evaluate_protocol(o);
//
// Protocol (specs/glomsam.md §6, §8; docs/glomsam.md "Reproducing Tables 2-4"):
// - Truth masks are matched to images by file stem. For a set S and a level folder
//   DIR, masks are looked up in DIR/S/ when that folder exists, else in DIR.
// - Boxes come from the truth of the level being scored: the bounding box of all
//   foreground pixels (glomsam::box_from_mask: max = last foreground index), each side
//   moved outward by an independent integer in [0, jitter] (order x0, x1, y0, y1),
//   clipped to [0, W] x [0, H]; an empty mask gives the whole image. per_instance:
//   one such box per 8-connected truth component, and the image's prediction is the
//   union of the per-box masks. The jitter draws are seeded by (seed, set, level,
//   image), so every model sees the very same boxes.
// - GlomSAM: image resized bilinearly to img_size x img_size (as the training data
//   loader does), boxes scaled alike, logits resized back, mask = logits >
//   config.mask_threshold. SAM / MedSAM: SamModel with the same boxes in original
//   pixels (their own preprocessing; one encoder pass per image). UNet: the rough-mask
//   generator alone (input img_size / 2 of its config, mask = logit > 0); no prompt.
// - Metrics per image (eval::compute_metrics, at the original resolution): pixel
//   accuracy, IoU, Dice, recall; eval's empty-mask conventions. Summaries: mean, SD
//   (n - 1), median, quartiles (eval::summarize) per (set, level, model). Instances:
//   8-connected components of prediction and truth, matched one-to-one when their IoU
//   >= instance_iou (0.5); precision = matched / predicted, recall = matched / truth,
//   summed over the images of a group.
//
// Outputs in out_dir (each file atomic; the masks folder appears complete or not at
// all; inputs are checked and every model loaded before anything is written):
//   per_image.csv   set, level, model, kind, image, accuracy, iou, dice, recall, boxes,
//                   truth_instances, pred_instances, matched_instances, mask
//   summary.csv     set, level, model, metric, n, mean, sd, median, q25, q75, min, max
//   instances.csv   set, level, model, truth, predicted, matched, precision, recall
//   summary.json    options, models, groups (summaries + instances), per-image records
//   boxplot_<set>_<level>_<metric>.png   one box per model
//   report.html     self-contained, eval's report style, tables shaped like the
//                   paper's Tables 2-4 (rows = models, columns = level x metric)
//   masks/<model>/<set>/<level>/<stem>.png   the predicted masks (0/255)
#pragma once

#include <opencv2/core/mat.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "nephroseg/core/enum_names.h"
#include "nephroseg/eval/metrics.h"
#include "nephroseg/glomsam/glomsam.h"
#include "nephroseg/io/mask.h"

namespace nephroseg::workloads {

using glomsam::Box;

/// The models the protocol compares (paper Tables 2-3).
enum class ModelKind { kGlomSam, kMedSam, kSam, kUNet };
/// "glomsam" | "medsam" | "sam" | "unet".
const EnumNames<ModelKind>& model_kind_names();

struct ProtocolModel {
  ModelKind kind = ModelKind::kGlomSam;
  std::string label;  ///< row name in tables and files; empty = default (see below)
  std::string checkpoint;
  /// Config: GlomSAM "" = stored in the checkpoint, else official (or a preset/JSON);
  /// SAM "" = vit_b, MedSAM "" = medsam (a JSON gets its preprocessing forced to the
  /// kind's); UNet "" = official widths (a GlomSAM preset/JSON: unet_features and
  /// img_size / 2).
  std::string config;
  /// GlomSAM / SAM / MedSAM inference precision (core/precision.h); UNet: fp32.
  Precision precision = Precision::kFp32;
};

/// "KIND[:LABEL]=CHECKPOINT". Default label: the kind, or "glomsam-<ablation>" for an
/// ablated GlomSAM (filled in when the model is loaded). Errors name `option`.
ProtocolModel parse_model_spec(const std::string& text, const std::string& option = "--model");

struct NamedFolder {
  std::string name, dir;
};
/// "NAME=DIR"; errors name `option`. Names: letters, digits, '_', '-', '.', '+'.
NamedFolder parse_named_folder(const std::string& text, const std::string& option);

struct ProtocolOptions {
  std::vector<NamedFolder> sets;    ///< image folders (e.g. 10x, 20x)
  std::vector<NamedFolder> truths;  ///< annotator levels (e.g. primary, intermediate)
  std::vector<ProtocolModel> models;
  std::string out_dir;
  int64_t jitter = 0;  ///< max outward shift per box side, px (reference 20)
  uint64_t seed = 2023;
  bool per_instance = false;
  double instance_iou = 0.5;
  io::MaskReadOptions truth_mask;  ///< how truth files become binary
  std::string title = "GlomSAM evaluation";
  /// Progress (set, level, image index, count); may be empty.
  std::function<void(const std::string& set, const std::string& image, size_t index, size_t count)> on_image;
};

struct ProtocolRecord {
  std::string set, level, model, image;
  ModelKind kind = ModelKind::kGlomSam;
  eval::MaskMetrics metrics;
  std::vector<Box> boxes;  ///< prompts in original pixels (none for UNet)
  int64_t truth_instances = 0, pred_instances = 0, matched_instances = 0;
  std::string mask_path;  ///< relative to out_dir
};

struct ProtocolGroup {
  std::string set, level, model;
  std::map<std::string, eval::SummaryStats> summary;  ///< accuracy, iou, dice, recall
  int64_t truth_instances = 0, pred_instances = 0, matched_instances = 0;
  double instance_precision = 0, instance_recall = 0;  ///< NaN when the denominator is 0
};

struct ProtocolRun {
  std::vector<std::string> sets, levels, models;  ///< in option order (models: labels)
  std::vector<ModelKind> kinds;                   ///< per model
  std::vector<std::string> model_notes;           ///< per model: config / ablation
  std::vector<ProtocolRecord> records;
  std::vector<ProtocolGroup> groups;  ///< set-major, then level, then model
  std::vector<std::string> files;     ///< written, relative to out_dir
};

/// The four metrics of the paper's tables, in table order: accuracy, iou, dice, recall.
const std::vector<std::string>& protocol_metrics();

/// Instance matching of one image: 8-connected components of pred and truth
/// (non-zero = foreground), one-to-one pairs with IoU >= iou_threshold.
struct InstanceCounts {
  int64_t truth = 0, predicted = 0, matched = 0;
};
InstanceCounts match_instances(const cv::Mat& pred, const cv::Mat& truth, double iou_threshold = 0.5);

/// The boxes the protocol gives every model for one truth mask (CV_8U, non-zero = fg).
std::vector<Box> protocol_boxes(const cv::Mat& truth, int64_t jitter, uint64_t seed, const std::string& set,
                                const std::string& level, const std::string& image, bool per_instance);

/// Runs the protocol and writes every output. Throws nephroseg::Error (before any
/// output) for a missing folder, a set without images, a truth folder that misses
/// images, a bad name, an unloadable model or a model of the wrong kind; and (leaving
/// no output) for an unreadable image or a truth whose size differs from its image.
ProtocolRun evaluate_protocol(const ProtocolOptions& options);

/// The report page (self-contained HTML).
std::string render_protocol_html(const ProtocolRun& run, const ProtocolOptions& options);

}  // namespace nephroseg::workloads
