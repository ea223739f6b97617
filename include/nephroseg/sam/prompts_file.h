// nephroseg/sam/prompts_file.h: SAM prompts as users write them: command-line numbers
// and the per-image prompts JSON of `nephroseg sam --prompts FILE.json`:
//
//   {
//     "slide_01.png": {"points": [[120, 80, 1], [40, 200, 0]], "box": [10, 20, 300, 260],
//                      "multimask": true},
//     "slide_02":     {"box": [5, 5, 90, 70], "mask_input": "prev_logits.npy"}
//   }
//
// points are [x, y, label] (label 1 foreground, 0 background, -1 ignored; [x, y] means
// label 1) in original-image pixels; a box is [x0, y0, x1, y1] with x1 > x0, y1 > y0;
// "mask_input" is a .npy of float low-res logits, relative to the JSON file's folder.
// Unknown fields and wrong types are errors naming the entry and the field.
// Thread safety: pure functions (they read the files they name).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "nephroseg/sam/sam.h"

namespace nephroseg::sam {

/// A prompt plus where its mask input came from (for result.json).
struct PromptSpec {
  SamPrompt prompt;
  std::string mask_input_path;
};

/// X,Y or X,Y,LABEL; `what` names the source in errors.
void add_point(PromptSpec& spec, const std::vector<float>& xy_label, const std::string& what);
/// X0,Y0,X1,Y1: finite, X1 > X0, Y1 > Y0.
void set_box(PromptSpec& spec, const std::vector<float>& box, const std::string& what);
/// Reads float low-res logits from a .npy file.
void set_mask_input(PromptSpec& spec, const std::string& npy_path, const std::string& what);

/// The prompts JSON as text; mask_input paths are resolved against base_dir.
/// `what` names the source (e.g. the file) in errors.
std::map<std::string, PromptSpec> parse_prompts_json(const std::string& text, const std::string& base_dir,
                                                     const std::string& what);
/// Reads a prompts JSON file (the map's keys: file name, stem or path of an image).
std::map<std::string, PromptSpec> read_prompts_file(const std::string& path);

/// Checks a prompt against the image it is for (width x height px) and the model's
/// config before the model runs: points and box inside the image, box ordered, MedSAM
/// given a box only and no multimask, mask input of the model's low-res size. Errors
/// name `image_path`.
void check_prompt_fits(const PromptSpec& spec, int width, int height, const SamConfig& config,
                       const std::string& image_path);

}  // namespace nephroseg::sam
