// nephroseg/workloads/gbmseg.h: the GBMSeg batch runner behind `nephroseg gbmseg`
// and `nephroseg demo`: one reference image + mask, many targets, files out.
//
//   workloads::GbmSegBatchOptions o;
//   o.reference_image = "ref.png";  o.reference_mask = "ref_mask.png";
//   o.targets = "images/";          o.ground_truth = "truth/";   // file or folder
//   o.out_dir = "out";
//   o.features  = {"dinov2", "dinov2_vitg14_pretrain.pth", "vitg14"};
//   o.segmenter = {"sam", "sam_vit_l_0b3195.pth", "vit_l"};
//   o.prompts = gbmseg::prompt_options_for(gbmseg::PromptPreset::kAuthorsCode);
//   workloads::GbmSegBatchResult r = workloads::run_gbmseg_batch(o, on_progress);
//
// Files written under out_dir (each atomically):
//   <name>.png           the mask (0/255, original size unless resize_to_original = false)
//   <name>.prompts.json  gbmseg::segment_record_to_json (every prompt stage, the options,
//                        the backends, the timings)
//   <name>.overlay.png   the mask (yellow) and the prompts (positives green, negatives red)
//                        on the image at the mask's size
//   <name>.thickness.png (when measuring, see below) the prompts overlay beside the
//                        thickness map (measure/thickness_map.h: the membrane coloured
//                        by its local width, colour bar in nm, scale bar)
//   summary.csv          one row per target (+ a "mean" row with ground truth); see
//                        write_gbmseg_summary
//   run.json             reference, backends, preset, options, counts, load times (only
//                        when something was segmented)
//   report.html          (when measuring) self-contained: per-target thickness table, a
//                        box plot of each target's local widths against the reference
//                        range, and every thickness picture
// <name> is the target's file stem. The mask is written last: a target whose three files
// exist is finished and is skipped (its row re-read from the files) unless overwrite.
// A target that fails is recorded (status "failed", the message) and the batch goes on.
// At start, temporaries left in out_dir by a killed run are removed
// (remove_stale_temporaries in core/atomic_file.h).
// Inputs are checked before anything is loaded or written; bad inputs throw
// nephroseg::Error and leave out_dir untouched.
//
// Thickness (GbmSegMeasureOptions; `gbmseg --measure`): each written mask is measured
// as `nephroseg measure` does (measure/thickness.h) at the target's original size, with
// the target file's own pixel size (DM, OME-XML, ImageJ, TIFF resolution tags) or
// --nm-per-pixel. Mode kAuto (the default) measures when a pixel size is known for at
// least one target of the run (targets without one get empty thickness cells); kOn
// requires one for every target and says which lacks it before anything is loaded;
// kOff never measures. The numbers go into summary.csv (thickness columns), into
// <name>.prompts.json ("thickness") and into report.html. A mask with nothing to
// measure (empty, or no background) gets a note instead of numbers, not a failure.
//
// Few-shot references: `references` lists several reference image + mask pairs (or one
// pair of folders, paired by file stem); they are pooled (GbmSegPipeline::add_reference).
// One reference is the one-shot GBMSeg of the paper, unchanged.
//
// Input images of 16 or 32 bits or floating point (DM files, 16-bit TIFF) are mapped
// to 8-bit by io::to_rgb8's rule (the [p0.5, p99.5] percentile window); the record's
// "input" object says which rule was applied.
//
// This runner is a workload (the one home of batch work), not part of gbmseg/: it adds
// files, shards, thickness (measure/) and metrics (eval/) around the pipeline.
//
// Sharded runs (GbmSegBatchOptions::shard, `--shard K/N` / `--shard auto`, see
// core/shard.h): the targets are listed and sorted as above, then this process takes
// target i when i mod N = K - 1. The per-target files are the same; the summary and the
// run record get the shard's suffix (summary.shard-K-of-N.csv, run.shard-K-of-N.json,
// the latter always written, with "complete": true once the shard has finished). The
// reference features are computed once per output folder and stored as
// reference.features.npy with reference.features.json (the features backend, its
// checkpoint's fingerprint, the reference image and mask fingerprints, S): a shard loads
// them instead of recomputing, and a mismatch with its own settings is an error.
// merge_gbmseg_shards() then writes the summary.csv and run.json one process would.
//
// Thread safety: run_gbmseg_batch is reentrant for distinct out_dir; the sink is
// called on the calling thread.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <opencv2/core/mat.hpp>

#include <cmath>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nephroseg/core/batch_record.h"
#include "nephroseg/core/enum_names.h"
#include "nephroseg/core/shard.h"
#include "nephroseg/eval/metrics.h"
#include "nephroseg/gbmseg/model_backends.h"
#include "nephroseg/gbmseg/pipeline.h"
#include "nephroseg/gbmseg/prompt_names.h"
#include "nephroseg/io/inputs.h"
#include "nephroseg/measure/reference.h"
#include "nephroseg/measure/thickness.h"
#include "nephroseg/workloads/workload.h"

namespace nephroseg::workloads {

/// One reference image and its GBM mask (files), or two folders paired by file stem.
struct ReferenceFiles {
  std::string image, mask;
};

/// Thickness in a GBMSeg run (see the header comment).
struct GbmSegMeasureOptions {
  enum class Mode { kAuto, kOn, kOff };
  Mode mode = Mode::kAuto;            ///< spelt by gbmseg_measure_mode_names(): auto | on | off
  std::string nm_per_pixel = "auto";  ///< "auto" = each target file's calibration, or a number
  measure::ReferenceRange range = measure::find_reference_range(measure::default_reference_id());
  measure::ThicknessOptions thickness;  ///< nm_per_pixel is set per target
};

/// "auto" | "on" | "off": the one spelling of GbmSegMeasureOptions::Mode (run.json,
/// Python's measure=; the CLI's --measure / --no-measure flags set on / off).
const EnumNames<GbmSegMeasureOptions::Mode>& gbmseg_measure_mode_names();

struct GbmSegBatchOptions {
  std::string reference_image;  ///< any image (or a folder); read as RGB
  std::string reference_mask;   ///< 8-bit 1-4 channels kept raw (patch rule), others binarised
  /// Few-shot: when non-empty, these references are pooled and reference_image /
  /// reference_mask are ignored. Each entry is two files or two folders (paired by stem).
  std::vector<ReferenceFiles> references;
  std::string targets;       ///< an image or a folder of images (io::list_inputs)
  std::string ground_truth;  ///< "" = none; a mask, or a folder paired by stem
  /// When non-empty, these targets (InputItem::partner = ground truth, "" none) are used
  /// instead of `targets` / `ground_truth`.
  std::vector<io::InputItem> items;
  std::string out_dir;  ///< created when missing

  /// Backends built with gbmseg::make_feature_extractor / make_point_segmenter, unless
  /// ready instances are given (those take precedence and the specs are ignored).
  /// The defaults are the published GBMSeg models: DINOv2 ViT-g/14 and SAM ViT-L (a
  /// config_json, when given, replaces the model type).
  gbmseg::BackendSpec features{"dinov2", "", "vitg14", "", false, 0};
  gbmseg::BackendSpec segmenter{"sam", "", "vit_l", "", false, 0};
  std::shared_ptr<gbmseg::PatchFeatureExtractor> features_backend;
  std::shared_ptr<gbmseg::PointPromptSegmenter> segmenter_backend;

  gbmseg::PromptOptions prompts = gbmseg::PromptOptions::authors_code();
  /// Recorded in prompts.json / run.json (the options used are `prompts`).
  gbmseg::PromptPreset preset = gbmseg::PromptPreset::kAuthorsCode;
  std::optional<gbmseg::AblationRow> ablation;
  gbmseg::PipelineOptions pipeline;
  bool overwrite = false;  ///< redo targets whose outputs exist
  Shard shard;             ///< this process's part of the targets (default: all)
  GbmSegMeasureOptions measure;
};

/// The reference pairs a batch pools, files only (folders expanded, paired by stem, in
/// name order). Throws naming what is missing or unpaired.
std::vector<ReferenceFiles> list_references(const GbmSegBatchOptions& options);

/// The thickness of one target's mask (all lengths in nm).
struct GbmSegThickness {
  double nm_per_pixel = 0;
  std::string calibration_source;   ///< "option", "dm", "ome-xml", "imagej", "tiff-resolution"
  measure::WidthStats oi, direct;   ///< raw 2-D intercepts / medial-axis widths, nm
  double oi_harmonic_3d_nm = NAN;   ///< OI harmonic mean x 8/(3 pi)
  double reference_value_nm = NAN;  ///< the value the range is compared with
  std::string verdict;              ///< "thin" | "normal" | "thick"; "" with a note
  std::string note;                 ///< why nothing was measured ("" when measured)
};

/// One row of summary.csv.
struct GbmSegTargetRecord {
  std::string name, path, ground_truth;  ///< ground_truth "" = none
  ItemStatus status = ItemStatus::kOk;
  std::string message;                          ///< first warning, skip reason, or the error
  int width = 0, height = 0;                    ///< of the written mask (0 = unknown)
  int n_pos = -1, n_neg = -1, n_warnings = -1;  ///< -1 = unknown
  double t_features = NAN, t_prompts = NAN, t_segment = NAN, t_total = NAN;  ///< seconds
  std::optional<eval::MaskMetrics> metrics;                                  ///< with ground truth
  std::optional<GbmSegThickness> thickness;  ///< when measured (a pixel size was known)
  /// The masks the metrics compared (prediction at the truth's size), for the
  /// authors' weighted Dice of the mean row.
  cv::Mat truth_mask, compared_mask;
};

/// The "mean" row of summary.csv: textbook means over the targets with metrics, and the
/// authors' weighted Dice (gbmseg::evaluate_dice, tools/dice.py).
struct GbmSegMeans {
  int n = 0;
  double dice = 0, iou = 0, precision = 0, recall = 0;
  double dice_authors_weighted = 0, miou_authors = 0;
};

struct GbmSegBatchResult {
  std::vector<GbmSegTargetRecord> targets;  ///< in input order (sorted by file name)
  int segmented = 0, skipped = 0, failed = 0;
  bool with_ground_truth = false;
  std::optional<GbmSegMeans> means;           ///< with ground truth and at least one metric
  std::vector<std::string> warnings;          ///< e.g. a target without ground truth
  std::string features_name, segmenter_name;  ///< "" when nothing was segmented
  double model_load_s = 0, reference_features_s = 0;
  std::string summary_csv, run_json;  ///< paths; run_json "" when not written
  size_t inputs_total = 0;            ///< targets before sharding
  bool reference_from_cache = false;  ///< shard mode: reference.features.npy reused
  bool measured = false;              ///< thickness columns written (see measure)
  int references = 0;                 ///< pooled references (0: nothing segmented)
  std::string report_html;            ///< "" when not written
};

/// What the events (workloads::Event) tell, in this order: kModelsReady once (only when
/// a target is left to segment), then kItemStarted / kItemFinished for each target to
/// segment and kItemFinished alone for a skipped one (a failed target: kItemFinished,
/// then kError with the error); kWarning at any time; after the last target, kInfo
/// lines summing the run up (and kError when a target failed). Every event's message
/// is the line `nephroseg gbmseg` prints. Event::detail of kModelsReady, kItemStarted
/// and kItemFinished holds a `const GbmSegEventDetail*`:
struct GbmSegEventDetail {
  size_t to_segment = 0;                             ///< targets not skipped
  const GbmSegTargetRecord* record = nullptr;        ///< kItem*
  const gbmseg::SegmentResult* result = nullptr;     ///< kItemFinished of a segmented target
  const cv::Mat* image = nullptr;                    ///< its RGB image, as read
  const gbmseg::GbmSegPipeline* pipeline = nullptr;  ///< kModelsReady and later events
};

/// Runs the batch (see the header comment). Throws nephroseg::Error for bad inputs
/// (missing files, unknown backends, colliding target names, a checkpoint missing for a
/// model backend) and when the backends or the reference fail; per-target failures are
/// recorded, not thrown. An exception thrown by the sink stops the batch.
GbmSegBatchResult run_gbmseg_batch(const GbmSegBatchOptions& options, const EventSink& events = {});

/// Writes summary.csv. Columns: name, target, status, message, width, height, mask,
/// n_pos, n_neg, n_warnings, features_s, prompts_s, segment_s, total_s; with thickness
/// also nm_per_pixel, calibration_source, thickness_oi_harmonic_3d_nm,
/// thickness_direct_median_nm, thickness_direct_mean_nm, n_intercepts, thickness_class,
/// thickness_note; with ground truth also ground_truth, dice, iou, precision, recall,
/// dice_authors_weighted_mean, miou_authors, filled only in the last row ("mean", whose
/// message says over how many images). Unknown values are empty cells. Returns the means
/// (nullopt without metrics).
std::optional<GbmSegMeans> write_gbmseg_summary(const std::string& path,
                                                const std::vector<GbmSegTargetRecord>& records,
                                                bool with_ground_truth, bool with_thickness = false);

/// The "thickness" object of <name>.prompts.json, and back (nullopt when absent).
nlohmann::json gbmseg_thickness_to_json(const GbmSegThickness& thickness,
                                        const measure::ReferenceRange& range);
std::optional<GbmSegThickness> gbmseg_thickness_from_json(const nlohmann::json& record);

/// Measures one written mask (at the target's original size) with `pixel_size_nm`
/// (> 0): the numbers, or a note when the mask has nothing to measure.
GbmSegThickness measure_gbmseg_mask(const cv::Mat& mask, double pixel_size_nm, const std::string& source,
                                    const GbmSegMeasureOptions& options,
                                    measure::ThicknessResult* result = nullptr);

/// report.html of a measured run (see the header comment); returns its path.
std::string write_gbmseg_report(const std::string& out_dir, const std::vector<GbmSegTargetRecord>& records,
                                const measure::ReferenceRange& range);

/// Result of merge_gbmseg_shards.
struct GbmSegMergeResult {
  int shards = 0;
  size_t inputs = 0;
  int segmented = 0, skipped = 0, failed = 0;
  std::vector<std::string> failed_names;  ///< "name: message"
  std::optional<GbmSegMeans> means;
  std::string summary_csv, run_json;
  std::string report_html;  ///< "" when the run did not measure
};

/// Combines the shards of a sharded run in out_dir into summary.csv and run.json: the
/// rows of every shard in the global input order and the means recomputed over all of
/// them (the authors' weighted Dice re-reads the written masks and the ground truth), as
/// one process over the same inputs would write them (timings are each shard's own).
/// Throws, naming them, when a shard's run.shard-K-of-N.json is missing or incomplete,
/// when shards disagree (count, inputs, settings), or when an input is in no shard.
/// Failed inputs are listed in the result (the files are still written).
GbmSegMergeResult merge_gbmseg_shards(const std::string& out_dir);

/// The picture of `<name>.overlay.png`: result.mask tinted yellow (with its outline) on
/// the target (`target_rgb`, or result.image_working when `working_size`, i.e. when the
/// mask was kept at S x S), the segmenter's points scaled from S x S to the mask,
/// negatives red then positives green, radius max(3, round(max(w, h) / 110)).
cv::Mat gbmseg_prompt_overlay(const cv::Mat& target_rgb, const gbmseg::SegmentResult& result,
                              bool working_size);

/// The picture of `<name>.thickness.png`: `overlay` (the prompts overlay at the mask's
/// size) on the left, the thickness map of `mask` (measure/thickness_map.h, colour bar
/// in nm, scale bar) on the right, same height.
cv::Mat gbmseg_thickness_picture(const cv::Mat& overlay, const cv::Mat& image_rgb, const cv::Mat& mask,
                                 const measure::ThicknessResult& result, const measure::ReferenceRange& range);

/// The target rows of a GBMSeg summary CSV (not the mean row), in file order, as
/// records: the thickness exactly as each target's <name>.prompts.json holds it (when
/// `with_thickness`), and for rows with metrics the masks compared (the ground truth
/// and the written mask at its size). Throws naming the file when it cannot be read.
std::vector<GbmSegTargetRecord> read_gbmseg_summary(const std::string& csv, const std::string& out_dir,
                                                    bool with_thickness);

/// A corrected mask for one target of a finished (unsharded) run folder, e.g. from the
/// workbench's review:
///  1. the first time, the mask GBMSeg wrote is kept as <name>.auto.png;
///  2. `mask` (non-zero = GBM; the target's original size) is written as <name>.png;
///  3. it is measured again with the pixel size the run used (<name>.prompts.json's
///     "thickness": nm_per_pixel and its source), as `nephroseg measure` measures a
///     mask, and the metrics against the row's ground truth are computed again;
///  4. <name>.prompts.json gets the new "thickness" and "edited": true,
///     <name>.thickness.png, summary.csv (that row and the mean row) and report.html are
///     written again.
/// Every file is written atomically. Returns the target's new row. Throws naming what is
/// wrong: no such target, a failed target, a mask of another size, a sharded folder.
GbmSegTargetRecord revise_gbmseg_target(const std::string& out_dir, const std::string& name, const cv::Mat& mask);

}  // namespace nephroseg::workloads
