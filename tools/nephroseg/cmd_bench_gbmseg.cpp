// `nephroseg bench gbmseg`: the GBMSeg batch pipeline against the authors' per-target
// schedule (bench/gbmseg.cpp).
#include <iostream>

#include "command.h"
#include "nephroseg/bench/bench.h"

namespace nephroseg::cli {
namespace {

Runner setup(CLI::App& app) {
  auto p = std::make_shared<bench::GbmsegBenchOptions>();
  app.add_option("--dinov2-type", p->dinov2_type,
                 "DINOv2 preset (vits14|vitb14|vitl14|vitg14; the authors use vitg14)")
      ->capture_default_str();
  app.add_option("--sam-type", p->sam_type, "SAM preset (vit_b|vit_l|vit_h)")->capture_default_str();
  app.add_option("--targets", p->targets, "number of target images")->capture_default_str();
  app.add_option("--size", p->size, "working size S")->capture_default_str();
  app.add_option("--seed", p->seed, "weights/images seed")->capture_default_str();
  app.add_flag("--skip-authors", p->skip_authors, "time the batch pipeline only");
  app.add_option("--precisions", p->precisions,
                 "comma-separated precisions timed in one run (fp32,bf16,int8,auto); default: "
                 "the global --precision");
  app.add_option("--sample", p->sample_dir,
                 "images from a folder laid out as shared/data/gbmseg_sample (reference_image/, "
                 "reference_mask/, target_image/) instead of synthetic ones")
      ->check(CLI::ExistingDirectory);
  return [p]() {
    p->precision = global_options().precision;
    p->force_precision = global_options().force_precision;
    return bench::run_gbmseg(*p, std::cout);
  };
}

NEPHRO_COMMAND("bench", "gbmseg",
               "GBMSeg batch pipeline vs the authors' per-target schedule (random weights)",
               setup);

}  // namespace
}  // namespace nephroseg::cli
