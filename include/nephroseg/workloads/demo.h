// nephroseg/workloads/demo.h: the self-contained GBMSeg demo behind `nephroseg demo`.
//
// Nothing is downloaded: the inputs are TEM-like phantoms (measure/phantom.h) with
// known masks and membrane thickness. One phantom is the one-shot reference (image +
// mask); phantoms drawn with other seeds are the targets. GBMSeg runs with the best
// backends available:
//   features   DINOv2 when an official checkpoint is found in the models folder
//              (dinov2_vitg14_pretrain.pth, then vitl14, vitb14, vits14), else the
//              weight-free ClassicalFeatureExtractor;
//   segmenter  SAM when found (sam_vit_l_0b3195.pth, then sam_vit_h_4b8939.pth,
//              sam_vit_b_01ec64.pth), else the weight-free ClassicalSegmenter.
// Then every predicted mask is measured (measure/thickness.h) and evaluated against
// the phantom's truth (eval/report.h).
//
// Files written under DemoOptions::out_dir (atomically, folders created):
//   reference/image.png, reference/mask.png   the one-shot reference
//   images/<name>.png, truth/<name>.png         the targets and their true masks
//   masks/<name>.png                            predicted masks (0/255, original size),
//                                               written by the GBMSeg batch runner
//                                               (gbmseg_batch.h) with its other outputs:
//                                               <name>.prompts.json, <name>.overlay.png,
//                                               summary.csv, run.json
//   overlays/<name>.png                         prediction (green), truth outline
//                                               (magenta), prompts (+ yellow, - red)
//   report/report.html (+ per_image.csv, summary.csv, summary.json, box plots)
//   thickness.csv                               true vs measured thickness per target
//   demo.json                                   backends, options, all numbers, timings
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nephroseg/gbmseg/backends.h"
#include "nephroseg/workloads/workload.h"
#include "nephroseg/measure/phantom.h"

namespace nephroseg::workloads {

/// Official checkpoints found in a models folder ("" when absent).
struct ModelFiles {
  std::string dinov2_checkpoint, dinov2_type;  ///< e.g. ".../dinov2_vitg14_pretrain.pth", "vitg14"
  std::string sam_checkpoint, sam_type;        ///< e.g. ".../sam_vit_l_0b3195.pth", "vit_l"
};

/// Looks for the official file names (see the header comment) in `dir`; "" or a missing
/// folder gives an empty result.
ModelFiles find_model_files(const std::string& dir);

/// The models folder to use: `explicit_dir` when non-empty, else $NEPHROSEG_MODELS, else "".
std::string resolve_models_dir(const std::string& explicit_dir);

struct ResolvedBackends {
  std::shared_ptr<gbmseg::PatchFeatureExtractor> features;
  std::shared_ptr<gbmseg::PointPromptSegmenter> segmenter;
  std::string features_kind, segmenter_kind;  ///< "dinov2" / "classical", "sam" / "classical"
  std::vector<std::string> notes;             ///< what was found / why a fallback was used
  std::vector<std::string> warnings;          ///< a checkpoint that failed to load under "auto"
};

/// Builds the backends. `features` is "auto", "dinov2" or "classical"; `segmenter` is
/// "auto", "sam" or "classical". "auto" takes the model when its checkpoint is in
/// `models_dir`, else the weight-free backend. Asking for "dinov2"/"sam" explicitly
/// without a checkpoint throws nephroseg::Error; a checkpoint that fails to load under
/// "auto" falls back with a note and a warning.
ResolvedBackends resolve_backends(const std::string& models_dir, const std::string& features = "auto",
                                  const std::string& segmenter = "auto");

/// The demo's phantoms: 512 x 512, membrane 32 px at 10 nm/px (320 nm, the scale of
/// the GBMSeg sample images), three membranes of mixed shapes.
measure::PhantomOptions demo_phantom_options();

struct DemoOptions {
  std::string out_dir = "nephroseg-demo";
  std::string models_dir;  ///< "" = $NEPHROSEG_MODELS (resolve_models_dir)
  std::string features = "auto";
  std::string segmenter = "auto";
  int num_targets = 4;
  uint64_t seed = 1;  ///< reference phantom seed; targets use seed+1 .. seed+n
  measure::PhantomOptions phantom = demo_phantom_options();  ///< seed field ignored
};

struct DemoTarget {
  std::string name;
  uint64_t seed = 0;
  double dice = 0, iou = 0, precision = 0, recall = 0;
  double true_thickness_nm = 0;
  double measured_oi_nm = 0;        ///< orthogonal intercepts, raw 2-D harmonic mean (predicted mask)
  double measured_direct_nm = 0;    ///< medial-axis median width (predicted mask); 0 if unmeasurable
  double truth_mask_direct_nm = 0;  ///< the same estimator on the true mask (estimator error alone)
  int num_positive = 0, num_negative = 0;
  double seconds = 0;
};

struct DemoResult {
  std::string features_name, segmenter_name;  ///< PatchFeatureExtractor/Segmenter::name()
  std::string features_kind, segmenter_kind;
  bool weight_free = false;  ///< both backends are the classical ones
  std::vector<std::string> notes;
  std::vector<DemoTarget> targets;
  double mean_dice = 0;
  double reference_seconds = 0, total_seconds = 0;
  std::string report_html;  ///< path of report/report.html
};

/// Runs the whole demo (see the header comment) through run_gbmseg_batch. Throws
/// nephroseg::Error on bad options (num_targets outside 1..100, unwritable folder,
/// unknown backend names) and when a target fails.
/// Events: the backends' warnings (kWarning) and notes (kInfo), then kItemFinished per
/// target (its one-line result).
DemoResult run_demo(const DemoOptions& options, const EventSink& events = {});

}  // namespace nephroseg::workloads
