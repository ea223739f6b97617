// `nephroseg bench checkpoint`: time and peak memory of loading a full-size checkpoint
// (bench/checkpoint.cpp).
#include <filesystem>
#include <iostream>

#include "command.h"
#include "nephroseg/bench/bench.h"

namespace nephroseg::cli {
namespace {

Runner setup(CLI::App& app) {
  auto p = std::make_shared<bench::CheckpointBenchOptions>();
  p->dir = std::filesystem::temp_directory_path().string();
  app.add_option("--dir", p->dir, "folder for the temporary checkpoint file")->capture_default_str();
  app.add_option("--model", p->model,
                 "sam_vit_b | sam_vit_l | sam_vit_h | medsam | dinov2_<preset> (dinov2_vitl14, "
                 "dinov2_vitg14, ...)")
      ->capture_default_str();
  app.add_option("--precisions", p->precisions,
                 "comma-separated precisions the model is loaded in (fp32,bf16,int8,auto); "
                 "default: the global --precision");
  return [p]() {
    p->precision = global_options().precision;
    p->force_precision = global_options().force_precision;
    return bench::run_checkpoint(*p, std::cout);
  };
}

NEPHRO_COMMAND("bench", "checkpoint",
               "time and peak memory of loading a full-size SAM or DINOv2 checkpoint", setup);

}  // namespace
}  // namespace nephroseg::cli
