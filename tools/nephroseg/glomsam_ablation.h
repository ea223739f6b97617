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

struct AblationSwitches {
  std::string row;  // empty = keep the config's own switches
  bool no_boundary_loss = false, no_rough_mask = false, no_prompt_generator = false, no_cnn_branch = false;

  bool any() const {
    return !row.empty() || no_boundary_loss || no_rough_mask || no_prompt_generator || no_cnn_branch;
  }
  /// Applies the switches to `config`; an unknown row is an error naming --ablation.
  void apply(glomsam::GlomSamConfig& config) const {
    if (!row.empty()) config.apply_ablation(glomsam::ablation_row_names().parse(row, "--ablation"));
    if (no_boundary_loss) config.boundary_loss = false;
    if (no_rough_mask) config.rough_mask = false;
    if (no_prompt_generator) config.prompt_generator = false;
    if (no_cnn_branch) config.cnn_branch = false;
    config.validate();
  }
};

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
