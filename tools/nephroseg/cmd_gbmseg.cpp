// `nephroseg gbmseg`: one-shot GBM segmentation (GBMSeg) of a target image or folder from
// one reference image + mask. The work (targets, outputs, summary.csv, run.json, skip /
// overwrite, failures, the progress lines) is workloads::run_gbmseg_batch
// (nephroseg/workloads/gbmseg.h); this command binds its options. Exit 1 if any target
// failed.
#include <string>

#include "command.h"
#include "events.h"
#include "gbmseg_prompt_options.h"
#include "nephroseg/gbmseg/prompt_overrides.h"
#include "nephroseg/workloads/gbmseg.h"
#include "options.h"

namespace nephroseg::cli {
namespace {

struct GbmSegParams {
  workloads::GbmSegBatchOptions batch;
  std::string features = batch.features.kind, segmenter = batch.segmenter.kind;
  ModelSelection dinov2{"", batch.features.model_type, ""};
  ModelSelection sam{"", batch.segmenter.model_type, ""};
  std::vector<std::string> reference_images, reference_masks;
  gbmseg::PromptOverrides prompts;  // the preset plus what the command line changes
  bool include_last_row_col = false, scale_fallbacks = false, measure = false, no_measure = false;
  std::string mask_resize = gbmseg::mask_resize_names().name(batch.pipeline.mask_resize),
              thickness_range = batch.measure.range.id, shard;
};

// A model backend named on the command line: a JSON config replaces the preset type.
gbmseg::BackendSpec model_spec(const std::string& kind, const std::string& model_kind,
                               const ModelSelection& m, const char* flag, const char* kind_flag) {
  if (kind == model_kind && m.checkpoint.empty())
    throw UsageError(detail::concat(flag, " is required for ", kind_flag, " ", kind));
  gbmseg::BackendSpec spec{kind, m.checkpoint, m.config.empty() ? m.type : std::string(), m.config};
  spec.precision = global_options().precision;
  return spec;
}

int run_gbmseg(GbmSegParams& p, const CLI::App& app) {
  workloads::GbmSegBatchOptions& b = p.batch;
  if (app.count("--include-last-row-col")) p.prompts.include_last_row_col = p.include_last_row_col;
  if (app.count("--scale-fallbacks")) p.prompts.scale_fallbacks = p.scale_fallbacks;
  p.prompts.option_spelling = true;
  b.prompts = gbmseg::resolve_prompt_options(p.prompts, &b.preset, &b.ablation);
  b.pipeline.mask_resize = gbmseg::mask_resize_names().parse(p.mask_resize, "--mask-resize");
  b.features = model_spec(p.features, "dinov2", p.dinov2, "--dinov2-checkpoint", "--features");
  b.segmenter = model_spec(p.segmenter, "sam", p.sam, "--sam-checkpoint", "--segmenter");
  if (p.reference_images.size() != p.reference_masks.size())
    throw UsageError(detail::concat("--reference-image is given ", p.reference_images.size(),
                                    " time(s) but --reference-mask ", p.reference_masks.size(),
                                    " time(s): give one mask per reference image (or two folders)"));
  for (size_t i = 0; i < p.reference_images.size(); ++i)
    b.references.push_back({p.reference_images[i], p.reference_masks[i]});
  if (p.measure && p.no_measure) throw UsageError("--measure and --no-measure exclude each other");
  using Mode = workloads::GbmSegMeasureOptions::Mode;
  b.measure.mode = p.measure ? Mode::kOn : p.no_measure ? Mode::kOff : Mode::kAuto;
  b.measure.range = measure::find_reference_range(p.thickness_range);
  b.shard = parse_shard(p.shard);
  return workloads::run_gbmseg_batch(b, print_event).failed > 0 ? 1 : 0;
}

Runner setup(CLI::App& app) {
  auto p = std::make_shared<GbmSegParams>();
  workloads::GbmSegBatchOptions& b = p->batch;
  // Backends.
  app.add_option("--features", p->features, "patch-feature backend: dinov2 | classical (weight-free)")
      ->capture_default_str();
  app.add_option("--segmenter", p->segmenter, "point-prompt segmenter backend: sam | classical (weight-free)")
      ->capture_default_str();
  // The checkpoints are required only for --features dinov2 / --segmenter sam.
  add_model_options(
      app, p->dinov2,
      ModelOptionSpec("dinov2", "DINOv2 checkpoint (dinov2_vit*14[_reg4]_pretrain.pth)",
                      "vits14|vitb14|vitl14|vitg14[_reg4] (authors: vitg14)", false, {"--dinov2"}));
  add_model_options(app, p->sam,
                    ModelOptionSpec("sam", "SAM checkpoint (sam_vit_{b,l,h}_*.pth)",
                                    "vit_b|vit_l|vit_h (authors: vit_l)", false, {"--sam"}));
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
  app.add_option("--target", b.targets, "target image, or a folder of images")->required();
  app.add_option("--ground-truth", b.ground_truth,
                 "ground-truth mask (file), or folder of masks named like the targets: adds "
                 "Dice, IoU, precision, recall to summary.csv");
  add_out_option(app, b.out_dir);
  add_prompt_options(app, p->prompts, p->include_last_row_col, p->scale_fallbacks);
  // Output.
  app.add_option("--mask-resize", p->mask_resize,
                 "S x S mask -> original size: nearest | bilinear (then >= 128)")
      ->capture_default_str();
  app.add_flag_function(
      "--keep-working-size", [&b](int64_t) { b.pipeline.resize_to_original = false; },
      "write masks at S x S (the authors' output) instead of the original size");
  app.add_flag("--largest-contour", b.pipeline.largest_contour,
               "keep only the largest contour, filled (authors' max_contour; off in main.py)");
  app.add_flag("--overwrite", b.overwrite, "redo targets whose outputs exist");
  // Thickness.
  app.add_flag("--measure", p->measure,
               "measure every mask; each target needs a pixel size (default: when known)");
  app.add_flag("--no-measure", p->no_measure, "do not measure thickness");
  app.add_option("--nm-per-pixel", b.measure.nm_per_pixel,
                 "auto (each file's calibration: DM, OME-XML, "
                 "ImageJ, TIFF tags) or nm per pixel")
      ->capture_default_str();
  app.add_option("--thickness-range", p->thickness_range,
                 "reference range of the thin/normal/thick verdict "
                 "(nephroseg measure --list-references)")
      ->capture_default_str();
  add_shard_option(app, p->shard, "targets");
  return [p, &app]() { return run_gbmseg(*p, app); };
}

NEPHRO_COMMAND("", "gbmseg",
               "one-shot GBM segmentation (GBMSeg: DINOv2 matching + SAM) of images from one "
               "reference image and mask",
               setup);

}  // namespace
}  // namespace nephroseg::cli
