// `nephroseg eval`: metrics of predicted masks against truth masks, with a report.
#include <cstdio>

#include "command.h"
#include "options.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/eval/report.h"

namespace nephroseg::cli {
namespace {

struct EvalParams {
  std::string pred, truth, out;
  eval::EvalOptions options;
};

int run_eval(EvalParams& p) {
  eval::EvalRun run = eval::evaluate_folders(p.pred, p.truth, p.options);
  eval::write_eval_report(p.out, run, p.options);
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
  return [p] { return run_eval(*p); };
}

}  // namespace

NEPHRO_COMMAND("", "eval", "segmentation metrics and an HTML report (pred vs truth folders)", setup_eval);

}  // namespace nephroseg::cli
