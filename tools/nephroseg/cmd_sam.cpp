// `nephroseg sam`: prompt SAM / MedSAM with points, a box and/or a low-res mask on
// one or many images; writes masks, low-res logits, a JSON summary and an overlay. With
// --auto, segment-anything's automatic mask generator instead of prompts.
// The work is workloads::run_sam_batch (nephroseg/workloads/sam.h, where the files and
// the per-image prompts JSON of --prompts are described).
#include "automask_options.h"
#include "command.h"
#include "events.h"
#include "nephroseg/core/log.h"
#include "nephroseg/workloads/sam.h"
#include "options.h"

namespace nephroseg::cli {
namespace {

struct SamParams {
  workloads::SamBatchOptions batch;
  ModelSelection model;
  std::vector<std::string> points;
  std::string box, mask_input, shard, output_type;
};

int run_sam(SamParams& p) {
  workloads::SamBatchOptions& b = p.batch;
  if (b.automask && (!p.points.empty() || !p.box.empty() || !p.mask_input.empty() || !b.prompts_file.empty() ||
                     b.prompt.prompt.multimask))
    throw UsageError("--auto prompts a grid of points itself: it excludes --point, --box, --mask-input, "
                     "--prompts and --multimask (use --output-type for several masks per point)");
  b.automask_options.output_type = sam::automask_output_names().parse(p.output_type, "--output-type");
  for (const auto& s : p.points) sam::add_point(b.prompt, parse_numbers(s, "--point"), "--point");
  if (!p.box.empty()) sam::set_box(b.prompt, parse_numbers(p.box, "--box"), "--box");
  if (!p.mask_input.empty()) sam::set_mask_input(b.prompt, p.mask_input, "--mask-input");
  b.checkpoint = p.model.checkpoint;
  b.model_type = p.model.type;
  b.model_config = p.model.config;
  b.precision = model_precision();
  b.shard = parse_shard(p.shard);
  const workloads::SamBatchResult r = workloads::run_sam_batch(b, print_event);
  if (!b.shard.whole())
    log_info("sam: shard ", b.shard.text(), ": ", r.segmented, " of ", r.inputs_total, " image(s) segmented");
  return 0;
}

Runner setup(CLI::App& app) {
  auto p = std::make_shared<SamParams>();
  p->model.type = p->batch.model_type;
  add_model_options(app, p->model, {"", "SAM / MedSAM checkpoint (.pth)", "vit_b | vit_l | vit_h | medsam"});
  app.add_option("--image", p->batch.images, "image file or folder (repeatable)")->required();
  app.add_option("--point", p->points,
                 "point prompt X,Y[,LABEL] in original pixels (LABEL 1 fg, 0 bg; repeatable)");
  app.add_option("--box", p->box, "box prompt X0,Y0,X1,Y1 in original pixels");
  app.add_option("--mask-input", p->mask_input, ".npy float32 [1,h,w] low-res logits prompt");
  app.add_flag("--multimask", p->batch.prompt.prompt.multimask,
               "return several masks (mask.png = highest IoU)");
  app.add_option("--prompts", p->batch.prompts_file,
                 "JSON: {\"<file name>\": {\"points\": [[x,y,label],...], \"box\": [x0,y0,x1,y1]}}");
  add_automask_options(app, p->batch.automask, p->batch.automask_options, p->output_type);
  add_out_option(app, p->batch.out_dir);
  add_shard_option(app, p->shard, "images");
  app.add_flag("--resume", p->batch.resume,
               "skip images whose result.json an earlier run wrote (reruns of a batch)");
  return [p]() { return run_sam(*p); };
}

NEPHRO_COMMAND("", "sam", "segment with SAM / MedSAM from point, box or mask prompts, or automatically (--auto)", setup);

}  // namespace
}  // namespace nephroseg::cli
