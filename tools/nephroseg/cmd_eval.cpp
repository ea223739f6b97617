// `nephroseg eval`: metrics of predicted masks against truth masks, with a report.
#include <cstdio>

#include "command.h"
#include "options.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/core/shard.h"
#include "nephroseg/workloads/eval.h"

namespace nephroseg::cli {
namespace {

struct EvalParams {
  std::string shard;
  workloads::EvalBatchOptions batch;
};

int run_eval(EvalParams& p) {
  p.batch.shard = parse_shard(p.shard);
  const Shard& shard = p.batch.shard;
  eval::EvalRun run = workloads::run_eval_batch(p.batch);
  const std::string& out = p.batch.out_dir;
  if (!shard.whole()) {
    log_info("eval: shard ", shard.text(), ": ", run.num_ok(), " of ", run.items.size(), " image(s) evaluated; run ",
             "`nephroseg merge ", out, "` when every shard has finished");
    return 0;
  }
  const auto& d = run.summary.at("dice");
  char line[256];
  std::snprintf(line, sizeof line, "%d of %zu images evaluated; Dice mean %.4f (SD %.4f), median %.4f; report: %s/report.html",
                run.num_ok(), run.items.size(), d.mean, d.sd, d.median, out.c_str());
  log_info(line);
  for (const auto& it : run.items)
    if (!it.ok) log_warn(it.name, ": ", it.status);
  if (run.num_ok() == 0) {
    log_error("no image pair could be evaluated (see ", out, "/report.html)");
    return 1;
  }
  return 0;
}

Runner setup_eval(CLI::App& app) {
  auto p = std::make_shared<EvalParams>();
  app.add_option("--pred", p->batch.pred_dir, "folder of predicted masks")->required();
  app.add_option("--truth", p->batch.truth_dir, "folder of truth masks (same names, any extension)")->required();
  add_out_option(app, p->batch.out_dir);
  app.add_option("--images", p->batch.options.image_dir, "optional folder of the images (same names) for the overlays");
  app.add_option("--pred-channel", p->batch.options.pred_mask.channel, "-1: any channel non-zero; else channel > threshold")
      ->capture_default_str();
  app.add_option("--truth-channel", p->batch.options.truth_mask.channel, "-1: any channel non-zero; else channel > threshold")
      ->capture_default_str();
  app.add_option("--boundary-ratio", p->batch.options.metrics.boundary_dilation_ratio,
                 "boundary IoU band width as a fraction of the image diagonal")
      ->capture_default_str();
  app.add_option("--title", p->batch.options.title, "report title")->capture_default_str();
  add_shard_option(app, p->shard, "image names");
  return [p] { return run_eval(*p); };
}

}  // namespace

NEPHRO_COMMAND("", "eval", "segmentation metrics and an HTML report (pred vs truth folders)", setup_eval);

}  // namespace nephroseg::cli
