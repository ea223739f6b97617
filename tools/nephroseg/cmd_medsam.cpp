// `nephroseg medsam`: the MedSAM box baseline (the comparison in the GlomSAM paper),
// with MedSAM's own preprocessing (resize to 1024x1024 ignoring the aspect ratio,
// min-max normalisation) and post-processing (bilinear resize of sigmoid(logits),
// threshold 0.5) forced whatever the config says. The same workload and files as
// `nephroseg sam` (nephroseg/workloads/sam.h).
#include "command.h"
#include "events.h"
#include "nephroseg/workloads/sam.h"
#include "options.h"

namespace nephroseg::cli {
namespace {

struct MedsamParams {
  workloads::SamBatchOptions batch;
  ModelSelection model{"", "medsam", ""};
  std::string image, box;
};

int run_medsam(MedsamParams& p) {
  workloads::SamBatchOptions& b = p.batch;
  b.images = {p.image};
  sam::set_box(b.prompt, parse_numbers(p.box, "--box"), "--box");
  b.checkpoint = p.model.checkpoint;
  b.model_type = p.model.type;
  b.model_config = p.model.config;
  b.preprocess = sam::SamPreprocess::kMedSam;
  b.precision = model_precision();
  workloads::run_sam_batch(b, print_event);
  return 0;
}

Runner setup(CLI::App& app) {
  auto p = std::make_shared<MedsamParams>();
  add_model_options(app, p->model, {"", "MedSAM checkpoint (medsam_vit_b.pth)", "medsam (the vit_b layout)"});
  app.add_option("--image", p->image, "image file")->required();
  app.add_option("--box", p->box, "box prompt X0,Y0,X1,Y1 in original pixels")->required();
  add_out_option(app, p->batch.out_dir);
  return [p]() { return run_medsam(*p); };
}

NEPHRO_COMMAND("", "medsam", "MedSAM box baseline with MedSAM's pre/post-processing", setup);

}  // namespace
}  // namespace nephroseg::cli
