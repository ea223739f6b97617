// `nephroseg bench sam`: SAM encoder/decoder timings (bench/sam.cpp).
#include <iostream>

#include "command.h"
#include "nephroseg/bench/bench.h"

namespace nephroseg::cli {
namespace {

Runner setup(CLI::App& app) {
  auto p = std::make_shared<bench::SamBenchOptions>();
  app.add_option("--runs", p->runs, "timed encoder runs (median reported, >= 1)")
      ->capture_default_str();
  app.add_option("--warmup", p->warmup, "untimed warm-up runs")->capture_default_str();
  app.add_option("--decoder-runs", p->decoder_runs, "timed decoder runs")->capture_default_str();
  app.add_option("--model-type", p->model_type, "vit_b | vit_l | vit_h | medsam")
      ->capture_default_str();
  app.add_flag("--breakdown", p->breakdown, "also time each encoder block once");
  app.add_option("--precisions", p->precisions,
                 "comma-separated precisions timed in one run (fp32,bf16,int8,auto); default: "
                 "the global --precision");
  return [p]() {
    p->precision = global_options().precision;
    p->force_precision = global_options().force_precision;
    return bench::run_sam(*p, std::cout);
  };
}

NEPHRO_COMMAND("bench", "sam", "SAM encoder/decoder timings, GFLOP/s vs measured sgemm peak",
               setup);

}  // namespace
}  // namespace nephroseg::cli
