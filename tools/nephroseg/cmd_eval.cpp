// `nephroseg eval`: metrics of predicted masks against truth masks, with a report.
#include <cstdio>

#include "command.h"
#include "options.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/core/shard.h"
#include "nephroseg/eval/report.h"

namespace nephroseg::cli {
namespace {

struct EvalParams {
  std::string pred, truth, out, shard;
  eval::EvalOptions options;
};

int run_eval(EvalParams& p) {
  const Shard shard = parse_shard(p.shard);
  eval::EvalRun run = eval::run_eval_batch(p.pred, p.truth, p.out, p.options, shard);
  if (!shard.whole()) {
    log_info("eval: shard ", shard.text(), ": ", run.num_ok(), " of ", run.items.size(), " image(s) evaluated; run ",
             "`nephroseg merge ", p.out, "` when every shard has finished");
    return 0;
  }
  const auto& d = run.summary.at("dice");
  char line[256];
  std::snprintf(line, sizeof line, "%d of %zu images evaluated; Dice mean %.4f (SD %.4f), median %.4f; report: %s/report.html",
                run.num_ok(), run.items.size(), d.mean, d.sd, d.median, p.out.c_str());
  log_info(line);
  for (const auto& it : run.items)
    if (!it.ok) log_warn(it.name, ": ", it.status);
  if (run.num_ok() == 0) {
    log_error("no image pair could be evaluated (see ", p.out, "/report.html)");
    return 1;
  }
  return 0;
}

Runner setup_eval(CLI::App& app) {
  auto p = std::make_shared<EvalParams>();
  app.add_option("--pred", p->pred, "folder of predicted masks")->required();
  app.add_option("--truth", p->truth, "folder of truth masks (same names, any extension)")->required();
  add_out_option(app, p->out);
  app.add_option("--images", p->options.image_dir, "optional folder of the images (same names) for the overlays");
  app.add_option("--pred-channel", p->options.pred_mask.channel, "-1: any channel non-zero; else channel > threshold")
      ->capture_default_str();
  app.add_option("--truth-channel", p->options.truth_mask.channel, "-1: any channel non-zero; else channel > threshold")
      ->capture_default_str();
  app.add_option("--boundary-ratio", p->options.metrics.boundary_dilation_ratio,
                 "boundary IoU band width as a fraction of the image diagonal")
      ->capture_default_str();
  app.add_option("--title", p->options.title, "report title")->capture_default_str();
  add_shard_option(app, p->shard, "image names");
  return [p] { return run_eval(*p); };
}

}  // namespace

NEPHRO_COMMAND("", "eval", "segmentation metrics and an HTML report (pred vs truth folders)", setup_eval);

}  // namespace nephroseg::cli
