// `nephroseg glomsam predict`: binary mask, instance labels, QuPath GeoJSON and overlay
// per image. The work is workloads::run_glomsam_predict (workloads/glomsam_predict.h).
#include "command.h"
#include "events.h"
#include "glomsam_ablation.h"
#include "nephroseg/workloads/glomsam_predict.h"
#include "options.h"

namespace nephroseg::cli {
namespace {

struct PredictParams {
  workloads::GlomSamPredictOptions batch;
  std::string box, shard;
  bool auto_box = false;
};

int run_predict(PredictParams& p) {
  workloads::GlomSamPredictOptions& b = p.batch;
  if (b.box_from_ground_truth && b.ground_truth.empty()) throw UsageError("--box-from-gt needs --gt");
  if (!p.box.empty()) {
    const auto v = parse_box(p.box);
    b.box = glomsam::Box{v[0], v[1], v[2], v[3]};
  }
  b.shard = parse_shard(p.shard);
  b.precision = model_precision();
  workloads::run_glomsam_predict(b, print_event);
  return 0;
}

Runner setup(CLI::App& app) {
  auto p = std::make_shared<PredictParams>();
  workloads::GlomSamPredictOptions& b = p->batch;
  app.add_option("--checkpoint", b.checkpoint, "GlomSAM checkpoint (train's best.pth or an official file)")
      ->required();
  app.add_option("--image", b.image, "image file or folder of images")->required();
  auto* box = app.add_option("--box", p->box, "box prompt X0,Y0,X1,Y1 in image pixels");
  auto* autobox =
      app.add_flag("--auto", p->auto_box, "box from the rough mask (default when --box is absent)");
  box->excludes(autobox);
  add_out_option(app, b.out_dir);
  add_glomsam_config_option(app, b.config);
  app.add_option("--overlap", b.overlap, "tile overlap for images larger than the model input")
      ->capture_default_str();
  app.add_option("--threshold", b.threshold, "logit threshold (reference 0.5; 0 = sigmoid 0.5)")
      ->capture_default_str();
  app.add_option("--patch-size", b.patch_size,
                 "as in `glomsam train`: image pixels per model input side; the image is resized by "
                 "img_size / patch-size before inference and the result back (0 = native scale)")
      ->capture_default_str();
  app.add_option("--gt", b.ground_truth, "ground-truth mask of a single --image: prints Dice and IoU");
  auto* fromgt = app.add_flag(
      "--box-from-gt", b.box_from_ground_truth,
      "box prompt = bounding box of the --gt mask (the paper's simulated clinician box, no jitter)");
  fromgt->excludes(box);
  fromgt->excludes(autobox);
  add_shard_option(app, p->shard, "images");
  app.add_flag("--resume", b.resume,
               "skip images whose outputs an earlier run completed (reruns of a batch)");
  add_ablation_options(app, b.ablation, /*training=*/false);
  return [p]() { return run_predict(*p); };
}

NEPHRO_COMMAND("glomsam", "predict", "segment glomeruli with a GlomSAM checkpoint", setup);

}  // namespace
}  // namespace nephroseg::cli
