// `nephroseg bench serve`: the samapi server's click and automask times beside the
// SAM library's encoder and predict times of the same run (bench/serve.cpp).
#include <iostream>

#include "command.h"
#include "nephroseg/bench/bench.h"

namespace nephroseg::cli {
namespace {

Runner setup(CLI::App& app) {
  auto p = std::make_shared<bench::ServeBenchOptions>();
  app.add_option("--runs", p->runs, "timed rounds, each a new view and 3 cached clicks (median reported, >= 1)")
      ->capture_default_str();
  app.add_option("--model-type", p->model_type, "vit_b | vit_l | vit_h | medsam")->capture_default_str();
  app.add_option("--model-config", p->model_config,
                 "SamConfig JSON (e.g. a tiny model for a smoke run); wins over --model-type");
  app.add_option("--points-per-side", p->points_per_side, "automask grid (0 skips automask)")
      ->capture_default_str();
  app.add_option("--image-size", p->image_size, "side of the square views sent, pixels")->capture_default_str();
  app.add_option("--dir", p->dir, "parent of the temporary folder for the checkpoint (default: system temp)");
  return [p]() {
    p->precision = global_options().precision;
    return bench::run_serve(*p, std::cout);
  };
}

NEPHRO_COMMAND("bench", "serve",
               "nephroseg serve over HTTP (new-view click, cached click, automask) vs the library's encoder and "
               "predict",
               setup);

}  // namespace
}  // namespace nephroseg::cli
