// `nephroseg demo`: the self-contained GBMSeg demo (phantoms -> GBMSeg -> masks,
// thickness, HTML report). Official checkpoints are used when found in --models DIR or
// $NEPHROSEG_MODELS, the weight-free backends otherwise. See docs/demo.md.
#include <cstdio>
#include <memory>

#include "command.h"
#include "events.h"
#include "nephroseg/workloads/demo.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/io/csv.h"

namespace nephroseg::cli {
namespace {

int run_demo_command(const workloads::DemoOptions& o) {
  const workloads::DemoResult r = workloads::run_demo(o, print_event);
  std::printf("GBMSeg demo on %zu phantom target(s) (reference seed %llu)\n", r.targets.size(),
              static_cast<unsigned long long>(o.seed));
  std::printf("  features : %s\n  segmenter: %s\n", r.features_name.c_str(), r.segmenter_name.c_str());
  if (r.weight_free)
    std::printf("  (no official checkpoints found: weight-free backends; put dinov2_vitg14_pretrain.pth /\n"
                "   sam_vit_l_0b3195.pth in --models DIR or $NEPHROSEG_MODELS to run the published models)\n");
  std::printf("\n  %-14s %6s %9s %13s %13s %7s\n", "target", "Dice", "true nm", "measured nm", "(OI raw nm)",
              "prompts");
  for (const auto& t : r.targets)
    std::printf("  %-14s %6.3f %9.0f %13.0f %13.0f %3d/%-3d\n", t.name.c_str(), t.dice, t.true_thickness_nm,
                t.measured_direct_nm, t.measured_oi_nm, t.num_positive, t.num_negative);
  std::printf("\n  mean Dice %.3f; measured = medial-axis median width of the predicted mask\n", r.mean_dice);
  std::printf("  %.1f s in total (reference %.1f s)\n", r.total_seconds, r.reference_seconds);
  std::printf("  report: %s\n  masks, overlays, thickness.csv, demo.json: %s/\n", r.report_html.c_str(),
              o.out_dir.c_str());
  return 0;
}

Runner setup_demo(CLI::App& app) {
  auto o = std::make_shared<workloads::DemoOptions>();
  app.add_option("--out", o->out_dir, "output folder")->capture_default_str();
  app.add_option("--models", o->models_dir,
                 "folder with official checkpoints (dinov2_vit*14_pretrain.pth, sam_vit_*.pth); "
                 "default $NEPHROSEG_MODELS");
  app.add_option("--features", o->features, "auto | dinov2 | classical")->capture_default_str();
  app.add_option("--segmenter", o->segmenter, "auto | sam | classical")->capture_default_str();
  app.add_option("--targets", o->num_targets, "number of target phantoms")->capture_default_str();
  app.add_option("--seed", o->seed, "reference phantom seed (targets: seed+1 ...)")->capture_default_str();
  app.add_option("--thickness-px", o->phantom.thickness_px, "true membrane thickness of the phantoms (px)")
      ->capture_default_str();
  app.add_option("--nm-per-pixel", o->phantom.nm_per_pixel, "phantom calibration")->capture_default_str();
  return [o] { return run_demo_command(*o); };
}

NEPHRO_COMMAND("", "demo", "self-contained GBMSeg demo on phantoms (no download needed)", setup_demo);

}  // namespace
}  // namespace nephroseg::cli
