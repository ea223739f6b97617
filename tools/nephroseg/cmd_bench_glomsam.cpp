// `nephroseg bench glomsam`: GlomSAM training and inference timings (bench/glomsam.cpp).
#include <iostream>

#include "command.h"
#include "nephroseg/bench/bench.h"

namespace nephroseg::cli {
namespace {

Runner setup(CLI::App& app) {
  auto p = std::make_shared<bench::GlomsamBenchOptions>();
  app.add_option("--config", p->config, "official | tiny | JSON file")->capture_default_str();
  app.add_option("--batch-size", p->batch_size, "training batch size")->capture_default_str();
  app.add_option("--train-steps", p->train_steps, "timed training steps (0 = skip)")->capture_default_str();
  app.add_option("--infer-runs", p->infer_runs, "timed inference passes (0 = skip)")->capture_default_str();
  app.add_option("--warmup", p->warmup, "untimed warm-up passes of each kind")->capture_default_str();
  return [p]() { return bench::run_glomsam(*p, std::cout); };
}

NEPHRO_COMMAND("bench", "glomsam", "GlomSAM training img/s, inference s/patch and peak memory", setup);

}  // namespace
}  // namespace nephroseg::cli
