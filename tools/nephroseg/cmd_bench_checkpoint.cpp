// `nephroseg bench checkpoint`: peak memory of loading a full-size checkpoint
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
  return [p]() { return bench::run_checkpoint(*p, std::cout); };
}

NEPHRO_COMMAND("bench", "checkpoint",
               "peak memory of loading a full-size (SAM vit_b-sized) checkpoint", setup);

}  // namespace
}  // namespace nephroseg::cli
