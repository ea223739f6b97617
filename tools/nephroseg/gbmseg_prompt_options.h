// tools/nephroseg/gbmseg_prompt_options.h: GBMSeg's prompt-engineering options (a preset
// plus what the command line changes, gbmseg/prompt_overrides.h), spelt once for every
// command that runs GBMSeg.
#pragma once

#include <CLI/CLI.hpp>

#include "nephroseg/gbmseg/prompt_overrides.h"

namespace nephroseg::cli {

/// Binds the options into `o`; the two flags go to plain bools (the caller copies them
/// into `o` when given, e.g. `if (app.count("--scale-fallbacks"))`).
inline void add_prompt_options(CLI::App& app, gbmseg::PromptOverrides& o, bool& include_last_row_col,
                               bool& scale_fallbacks) {
  app.footer(
      "Presets: authors-code = the public code (HEAD d327490): S 560, D_sp_pos = D_sp_neg = "
      "D_ex = 0.125 S, D_sp_hard 1 px, hard negatives off; paper = D_ex 0.25 S, D_sp_pos 0, "
      "D_sp_neg = D_sp_hard = 0.125 S, H1 hard sampling on. Any option below overrides the "
      "preset. See docs/gbmseg.md.");
  app.add_option("--preset", o.preset,
                 "authors-code (default) | paper (default with --ablation) | authors-c0947 | "
                 "authors-2023");
  app.add_option("--ablation", o.ablation,
                 "paper Table 1 row: forward|backward|exclusive|sparse|hard (cumulative; "
                 "builds on --preset paper)");
  app.add_option("--size", o.size, "working size S (images resized to S x S, multiple of 14; preset: 560)");
  app.add_option("--patch-rule", o.patch_rule, "reference patch rule: all-nonzero (authors) | threshold");
  app.add_option("--patch-threshold", o.patch_threshold,
                 "threshold for --patch-rule threshold (preset: 128)");
  app.add_flag("--include-last-row-col", include_last_row_col,
               "also classify the last patch row/column (authors skip them)");
  app.add_option("--hard", o.hard,
                 "hard negatives: off | h1 (rejected matches, paper reading) | h2 "
                 "(farthest matches, authors' list); h1/h2 append them to the negatives");
  app.add_option("--order", o.order,
                 "point order before sampling: raster | cpython-set (bit-exact with "
                 "the authors' Python set order)");
  app.add_option("--ape-order", o.ape_order, "APE step order: head | 2023");
  app.add_option("--d-sp-pos", o.d_sp_pos, "positive sparse radius: fraction of S (0.125) or pixels (70px)");
  app.add_option("--d-sp-neg", o.d_sp_neg, "negative sparse radius (as --d-sp-pos)");
  app.add_option("--d-ex", o.d_ex, "exclusive radius (as --d-sp-pos)");
  app.add_option("--d-sp-hard", o.d_sp_hard, "hard sparse radius (as --d-sp-pos)");
  app.add_flag("--scale-fallbacks", scale_fallbacks, "scale the fallback points (250,250)/(10,10) by S/512");
}

}  // namespace nephroseg::cli
