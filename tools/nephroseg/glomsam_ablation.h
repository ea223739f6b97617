// tools/nephroseg/glomsam_ablation.h: the GlomSAM ablation switches (paper Table 4),
// spelt the same way by `glomsam train`, `glomsam predict` and `glomsam eval`.
//
//   --ablation ROW         full | no_boundary_loss | no_rough_mask | no_prompt_generator |
//                          no_cnn_branch | medsam (glomsam::ablation_row_names())
//   --no-boundary-loss --no-rough-mask --no-prompt-generator --no-cnn-branch
//                          remove one component each, on top of --ablation
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "nephroseg/glomsam/glomsam.h"

namespace nephroseg::cli {

using glomsam::AblationSwitches;

/// `--model-config auto|official|tiny|FILE.json` (GlomSamModel::config_for), with the
/// older spelling `--config` kept as a hidden alias.
inline void add_glomsam_config_option(CLI::App& app, std::string& config) {
  app.add_option("--model-config", config,
                 "model config: auto (stored by `glomsam train`, else official) | official | tiny | JSON file")
      ->capture_default_str();
  app.add_option("--config", config, "alias of --model-config")->group("");
}

inline void add_ablation_options(CLI::App& app, AblationSwitches& s, bool training) {
  app.add_option("--ablation", s.row,
                 "paper Table 4 row: " + glomsam::ablation_row_names().choices() +
                     (training ? " (stored in the checkpoint's config)" : ""));
  if (training) {
    app.add_flag("--no-boundary-loss", s.no_boundary_loss, "train with BCE + Dice only (no Boundary DoU)");
  }
  app.add_flag("--no-rough-mask", s.no_rough_mask, "no UNet rough mask (no dense mask prompt)");
  app.add_flag("--no-prompt-generator", s.no_prompt_generator, "no EVP prompt generator in the ViT");
  app.add_flag("--no-cnn-branch", s.no_cnn_branch, "no ResNet branch / SE fusion: ViT neck straight to the decoder");
}

}  // namespace nephroseg::cli
