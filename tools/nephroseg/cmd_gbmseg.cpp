// `nephroseg gbmseg`: one-shot GBM segmentation (GBMSeg) of a target image or folder from
// one reference image + mask. The work (targets, outputs, summary.csv, run.json, skip /
// overwrite, failures) is workloads::run_gbmseg_batch (nephroseg/workloads/gbmseg.h);
// this command turns the options into GbmSegBatchOptions and reports. Exit 1 if any
// target failed.
#include <optional>
#include <string>

#include "command.h"
#include "options.h"
#include "nephroseg/workloads/gbmseg.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/core/shard.h"
#include "nephroseg/gbmseg/prompt_names.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/measure/reference.h"

namespace nephroseg::cli {
namespace {

using gbmseg::PromptOptions;

struct GbmSegParams {
  // Backends.
  std::string features = "dinov2", segmenter = "sam";
  ModelSelection dinov2{"", "vitg14", ""};
  ModelSelection sam{"", "vit_l", ""};
  // Data.
  std::vector<std::string> reference_images, reference_masks;
  std::string target, ground_truth, out;
  // Thickness.
  bool measure = false, no_measure = false;
  std::string nm_per_pixel = "auto", thickness_range = measure::default_reference_id();
  // Prompt engineering.
  std::string preset = "authors-code", ablation;
  int size = 560;
  std::string patch_rule = "all-nonzero";
  int patch_threshold = 128;
  bool include_last_row_col = false;
  std::string hard = "off", order = "raster", ape_order = "head";
  std::string d_sp_pos, d_sp_neg, d_ex, d_sp_hard;
  bool scale_fallbacks = false;
  // Output.
  std::string mask_resize = "nearest";
  bool keep_working_size = false, largest_contour = false, overwrite = false;
  std::string shard;
};

// Options given on the command line (count() > 0) override the preset.
struct Overrides {
  CLI::Option *size, *patch_rule, *patch_threshold, *last, *hard, *order, *ape_order, *d_sp_pos, *d_sp_neg, *d_ex,
      *d_sp_hard, *scale_fallbacks, *preset;
};

void set_prompt_options(const GbmSegParams& p, const Overrides& o, workloads::GbmSegBatchOptions& b) {
  if (!p.ablation.empty()) b.ablation = gbmseg::ablation_row_names().parse(p.ablation, "--ablation");
  b.preset = b.ablation && o.preset->count() == 0 ? gbmseg::PromptPreset::kPaper
                                                  : gbmseg::prompt_preset_names().parse(p.preset, "--preset");
  PromptOptions opt = gbmseg::prompt_options_for(b.preset, b.ablation);
  if (o.size->count()) opt.size = p.size;
  if (o.patch_rule->count()) opt.patch_rule = gbmseg::patch_rule_names().parse(p.patch_rule, "--patch-rule");
  if (o.patch_threshold->count()) opt.patch_threshold = p.patch_threshold;
  if (o.last->count()) opt.skip_last_row_col = !p.include_last_row_col;
  if (o.hard->count()) {
    opt.hard_mode = gbmseg::hard_mode_names().parse(p.hard, "--hard");
    opt.hard_sample = opt.hard_mode != gbmseg::HardMode::kOff;
    if (opt.hard_mode == gbmseg::HardMode::kOff) opt.merge_h2_into_negatives = false;
  }
  if (o.order->count()) opt.order = gbmseg::point_order_names().parse(p.order, "--order");
  if (o.ape_order->count()) opt.ape_order = gbmseg::ape_order_names().parse(p.ape_order, "--ape-order");
  if (o.d_sp_pos->count()) opt.d_sp_pos = gbmseg::parse_radius(p.d_sp_pos, "--d-sp-pos");
  if (o.d_sp_neg->count()) opt.d_sp_neg = gbmseg::parse_radius(p.d_sp_neg, "--d-sp-neg");
  if (o.d_ex->count()) opt.d_ex = gbmseg::parse_radius(p.d_ex, "--d-ex");
  if (o.d_sp_hard->count()) opt.d_sp_hard = gbmseg::parse_radius(p.d_sp_hard, "--d-sp-hard");
  if (o.scale_fallbacks->count()) opt.scale_fallbacks = p.scale_fallbacks;
  NEPHRO_CHECK(opt.size > 0 && opt.size % opt.patch_size == 0, "--size ", opt.size,
               " must be a positive multiple of the patch size ", opt.patch_size);
  b.prompts = opt;
}

// A model backend named on the command line: a JSON config replaces the preset type.
gbmseg::BackendSpec model_spec(const std::string& kind, const std::string& model_kind, const ModelSelection& m,
                               const char* flag, const char* kind_flag) {
  if (kind == model_kind && m.checkpoint.empty())
    throw UsageError(detail::concat(flag, " is required for ", kind_flag, " ", kind));
  return {kind, m.checkpoint, m.config.empty() ? m.type : std::string(), m.config, /*random_weights=*/false,
          /*seed=*/0, global_options().precision};
}

// One line per target (log_info: silenced by --quiet).
void report(const workloads::GbmSegBatchEvent& e) {
  using Kind = workloads::GbmSegBatchEvent::Kind;
  if (e.kind == Kind::kWarning) {
    log_warn(e.message);
  } else if (e.kind == Kind::kModelsReady) {
    const gbmseg::GbmSegPipeline& p = *e.pipeline;
    log_info("gbmseg: ", p.feature_extractor().name(), " + ", p.segmenter().name(), "; reference features in ",
             io::format_fixed(p.reference_seconds(), 1), " s (", p.reference_patch_sets().fg.size(), " fg / ",
             p.reference_patch_sets().bg.size(), " bg patches); ", e.to_segment, " of ", e.total,
             " target(s) to segment at ", p.options().size, "x", p.options().size);
  } else if (e.kind == Kind::kTargetFinished) {
    const workloads::GbmSegTargetRecord& r = *e.record;
    std::string status = r.status == ItemStatus::kSkipped ? "skipped (outputs exist)" : r.status == ItemStatus::kFailed ? "FAILED" : "";
    if (r.status == ItemStatus::kOk) {
      status = detail::concat(r.n_pos, " pos / ", r.n_neg, " neg");
      if (r.metrics) status += ", Dice " + io::format_fixed(r.metrics->dice, 4);
      if (r.thickness && r.thickness->note.empty())
        status += ", GBM " + io::format_fixed(r.thickness->reference_value_nm, 0) + " nm (" + r.thickness->verdict + ")";
      status += " (" + io::format_fixed(r.t_total, 1) + " s)";
    }
    log_info("gbmseg [", e.index + 1, "/", e.total, "] ", r.name, ": ", status);
    if (r.status == ItemStatus::kFailed) log_message(LogLevel::kError, detail::concat("target '", r.path, "': ", r.message));
  }
}

int run_gbmseg(const GbmSegParams& p, const Overrides& o) {
  workloads::GbmSegBatchOptions b;
  set_prompt_options(p, o, b);
  b.pipeline.mask_resize = gbmseg::mask_resize_names().parse(p.mask_resize, "--mask-resize");
  b.pipeline.resize_to_original = !p.keep_working_size;
  b.pipeline.largest_contour = p.largest_contour;
  b.features = model_spec(p.features, "dinov2", p.dinov2, "--dinov2-checkpoint", "--features");
  b.segmenter = model_spec(p.segmenter, "sam", p.sam, "--sam-checkpoint", "--segmenter");
  if (p.reference_images.size() != p.reference_masks.size())
    throw UsageError(detail::concat("--reference-image is given ", p.reference_images.size(),
                                    " time(s) but --reference-mask ", p.reference_masks.size(),
                                    " time(s): give one mask per reference image (or two folders)"));
  for (size_t i = 0; i < p.reference_images.size(); ++i)
    b.references.push_back({p.reference_images[i], p.reference_masks[i]});
  b.reference_image = p.reference_images.front();
  b.reference_mask = p.reference_masks.front();
  if (p.measure && p.no_measure) throw UsageError("--measure and --no-measure exclude each other");
  using Mode = workloads::GbmSegMeasureOptions::Mode;
  b.measure.mode = p.measure ? Mode::kOn : p.no_measure ? Mode::kOff : Mode::kAuto;
  b.measure.nm_per_pixel = p.nm_per_pixel;
  b.measure.range = measure::find_reference_range(p.thickness_range);
  b.targets = p.target;
  b.ground_truth = p.ground_truth;
  b.out_dir = p.out;
  b.overwrite = p.overwrite;
  b.shard = parse_shard(p.shard);

  const workloads::GbmSegBatchResult r = workloads::run_gbmseg_batch(b, report);
  if (r.segmented + r.failed == 0)
    log_info("gbmseg: all ", r.targets.size(), " target(s) already have outputs in '", p.out,
             "' (use --overwrite to redo)");
  if (r.means) {
    const workloads::GbmSegMeans& m = *r.means;
    log_info("gbmseg: mean over ", m.n, " image(s): Dice ", io::format_fixed(m.dice, 4), ", IoU ",
             io::format_fixed(m.iou, 4), ", precision ", io::format_fixed(m.precision, 4), ", recall ",
             io::format_fixed(m.recall, 4), " (authors' weighted Dice ", io::format_fixed(m.dice_authors_weighted, 4),
             ")");
  }
  if (!b.shard.whole())
    log_info("gbmseg: shard ", b.shard.text(), ": ", r.targets.size(), " of ", r.inputs_total, " target(s)",
             r.reference_from_cache ? "; reference features from reference.features.npy" : "");
  if (r.references > 1) log_info("gbmseg: ", r.references, " references pooled");
  if (r.measured) {
    int n = 0;
    for (const auto& t : r.targets) n += t.thickness && t.thickness->note.empty();
    log_info("gbmseg: thickness measured in ", n, " of ", r.targets.size(), " target(s)",
             r.report_html.empty() ? std::string() : " -> " + r.report_html);
  }
  log_info("gbmseg: ", r.segmented, " segmented, ", r.skipped, " skipped, ", r.failed, " failed -> ", r.summary_csv);
  if (r.failed > 0) {
    log_message(LogLevel::kError, detail::concat(r.failed, " of ", r.targets.size(), " target(s) failed (see ",
                                                 r.summary_csv, ")"));
    return 1;
  }
  return 0;
}

Runner setup(CLI::App& app) {
  auto p = std::make_shared<GbmSegParams>();
  auto o = std::make_shared<Overrides>();
  app.footer(
      "Presets: authors-code = the public code (HEAD d327490): S 560, D_sp_pos = D_sp_neg = "
      "D_ex = 0.125 S, D_sp_hard 1 px, hard negatives off; paper = D_ex 0.25 S, D_sp_pos 0, "
      "D_sp_neg = D_sp_hard = 0.125 S, H1 hard sampling on. Any option below overrides the "
      "preset. See docs/gbmseg.md.");
  // Backends.
  app.add_option("--features", p->features, "patch-feature backend: dinov2 | classical (weight-free)")
      ->capture_default_str();
  app.add_option("--segmenter", p->segmenter, "point-prompt segmenter backend: sam | classical (weight-free)")
      ->capture_default_str();
  ModelOptionSpec dino("dinov2", "DINOv2 checkpoint (dinov2_vit*14[_reg4]_pretrain.pth)",
                       "vits14|vitb14|vitl14|vitg14, optionally _reg4 (authors: vitg14)");
  dino.checkpoint_required = false;  // only for --features dinov2
  dino.aliases = {"--dinov2"};
  add_model_options(app, p->dinov2, dino);
  ModelOptionSpec sam("sam", "SAM checkpoint (sam_vit_{b,l,h}_*.pth)", "vit_b|vit_l|vit_h (authors: vit_l)");
  sam.checkpoint_required = false;  // only for --segmenter sam
  sam.aliases = {"--sam"};
  add_model_options(app, p->sam, sam);
  // Data.
  app.add_option("--reference-image", p->reference_images,
                 "reference image, or a folder of them; repeat to pool several references (few-shot)")
      ->required()
      ->allow_extra_args(false);
  app.add_option("--reference-mask", p->reference_masks,
                 "GBM mask of the reference image (non-zero = GBM), or a folder paired by file name; one per "
                 "--reference-image")
      ->required()
      ->allow_extra_args(false);
  app.add_option("--target", p->target, "target image, or a folder of images")->required();
  app.add_option("--ground-truth", p->ground_truth,
                 "ground-truth mask (file), or folder of masks named like the targets: adds "
                 "Dice, IoU, precision, recall to summary.csv");
  add_out_option(app, p->out);
  // Prompt engineering.
  o->preset = app.add_option("--preset", p->preset, "authors-code|paper|authors-c0947|authors-2023")
                  ->capture_default_str();
  app.add_option("--ablation", p->ablation,
                 "paper Table 1 row: forward|backward|exclusive|sparse|hard (cumulative; "
                 "builds on --preset paper)");
  o->size = app.add_option("--size", p->size, "working size S (images resized to S x S, multiple of 14; preset: 560)");
  o->patch_rule = app.add_option("--patch-rule", p->patch_rule, "reference patch rule: all-nonzero (authors) | threshold");
  o->patch_threshold =
      app.add_option("--patch-threshold", p->patch_threshold, "threshold for --patch-rule threshold (preset: 128)");
  o->last = app.add_flag("--include-last-row-col", p->include_last_row_col,
                         "also classify the last patch row/column (authors skip them)");
  o->hard = app.add_option("--hard", p->hard,
                           "hard negatives: off | h1 (rejected matches, paper reading) | h2 "
                           "(farthest matches, authors' list); h1/h2 append them to the negatives");
  o->order = app.add_option("--order", p->order,
                            "point order before sampling: raster | cpython-set (bit-exact with "
                            "the authors' Python set order)");
  o->ape_order = app.add_option("--ape-order", p->ape_order, "APE step order: head | 2023");
  o->d_sp_pos = app.add_option("--d-sp-pos", p->d_sp_pos, "positive sparse radius: fraction of S (0.125) or pixels (70px)");
  o->d_sp_neg = app.add_option("--d-sp-neg", p->d_sp_neg, "negative sparse radius (as --d-sp-pos)");
  o->d_ex = app.add_option("--d-ex", p->d_ex, "exclusive radius (as --d-sp-pos)");
  o->d_sp_hard = app.add_option("--d-sp-hard", p->d_sp_hard, "hard sparse radius (as --d-sp-pos)");
  o->scale_fallbacks =
      app.add_flag("--scale-fallbacks", p->scale_fallbacks, "scale the fallback points (250,250)/(10,10) by S/512");
  // Output.
  app.add_option("--mask-resize", p->mask_resize, "S x S mask -> original size: nearest | bilinear (then >= 128)")
      ->capture_default_str();
  app.add_flag("--keep-working-size", p->keep_working_size,
               "write masks at S x S (the authors' output) instead of the original size");
  app.add_flag("--largest-contour", p->largest_contour,
               "keep only the largest contour, filled (authors' max_contour; off in main.py)");
  app.add_flag("--overwrite", p->overwrite, "redo targets whose outputs exist");
  // Thickness.
  app.add_flag("--measure", p->measure,
               "measure GBM thickness in every mask; each target needs a pixel size (default: measure when a "
               "pixel size is known)");
  app.add_flag("--no-measure", p->no_measure, "do not measure thickness");
  app.add_option("--nm-per-pixel", p->nm_per_pixel,
                 "pixel size of the targets: auto = each file's calibration (DM, OME-XML, ImageJ, TIFF tags), or nm")
      ->capture_default_str();
  app.add_option("--thickness-range", p->thickness_range,
                 "reference range for the thin/normal/thick verdict (ids: nephroseg measure --list-references)")
      ->capture_default_str();
  app.add_option("--shard", p->shard,
                 "K/N: segment only targets i with i mod N = K-1 (sorted by name); auto: from the Slurm job "
                 "array (SLURM_ARRAY_TASK_*). Then run `nephroseg merge OUT`");
  return [p, o]() { return run_gbmseg(*p, *o); };
}

NEPHRO_COMMAND("", "gbmseg",
               "one-shot GBM segmentation (GBMSeg: DINOv2 matching + SAM) of images from one "
               "reference image and mask",
               setup);

}  // namespace
}  // namespace nephroseg::cli
