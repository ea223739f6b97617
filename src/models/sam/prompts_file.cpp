#include "nephroseg/sam/prompts_file.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "nephroseg/core/error.h"
#include "nephroseg/core/json_config.h"
#include "nephroseg/io/npy.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace nephroseg::sam {
namespace {

PromptSpec prompt_from_json(const json& j, const std::string& key, const fs::path& base, const std::string& source) {
  const std::string what = source + " entry '" + key + "'";
  NEPHRO_CHECK(j.is_object(), what, " must be an object");
  PromptSpec spec;
  for (const auto& item : j.items()) {
    const std::string& k = item.key();
    const json& v = item.value();
    try {
      if (k == "points") {
        NEPHRO_CHECK(v.is_array(), what, ": field 'points' must be a list of [x, y, label]");
        for (const auto& pt : v) add_point(spec, pt.get<std::vector<float>>(), what);
      } else if (k == "box") {
        set_box(spec, v.get<std::vector<float>>(), what);
      } else if (k == "multimask") {
        spec.prompt.multimask = v.get<bool>();
      } else if (k == "mask_input") {
        const fs::path p = v.get<std::string>();
        set_mask_input(spec, (p.is_absolute() ? p : base / p).string(), what);
      } else {
        NEPHRO_FAIL(what, ": unknown field '", k, "' (points, box, multimask, mask_input)");
      }
    } catch (const json::exception& e) {
      NEPHRO_FAIL(what, ": field '", k, "' has the wrong type (", json_error_text(e), ")");
    }
  }
  return spec;
}

}  // namespace

void add_point(PromptSpec& spec, const std::vector<float>& v, const std::string& what) {
  NEPHRO_CHECK(v.size() == 2 || v.size() == 3, what, ": a point is X,Y or X,Y,LABEL");
  NEPHRO_CHECK(std::isfinite(v[0]) && std::isfinite(v[1]), what, ": point coordinates must be finite numbers");
  spec.prompt.points.push_back({v[0], v[1]});
  const float label = v.size() == 3 ? v[2] : 1.f;
  NEPHRO_CHECK(label == -1.f || label == 0.f || label == 1.f, what, ": label ", label,
               " must be 1 (foreground), 0 (background) or -1 (ignored)");
  spec.prompt.labels.push_back(static_cast<int>(label));
}

void set_box(PromptSpec& spec, const std::vector<float>& v, const std::string& what) {
  NEPHRO_CHECK(v.size() == 4, what, ": a box is X0,Y0,X1,Y1");
  for (float x : v) NEPHRO_CHECK(std::isfinite(x), what, ": box coordinates must be finite numbers");
  NEPHRO_CHECK(v[2] > v[0] && v[3] > v[1], what, ": a box X0,Y0,X1,Y1 needs X1 > X0 and Y1 > Y0");
  spec.prompt.box = std::array<float, 4>{v[0], v[1], v[2], v[3]};
}

void set_mask_input(PromptSpec& spec, const std::string& path, const std::string& what) {
  NEPHRO_CHECK(fs::is_regular_file(path), what, ": mask input '", path, "' does not exist");
  at::Tensor m = io::read_npy(path);
  NEPHRO_CHECK(m.is_floating_point(), what, ": mask input '", path, "' must hold float low-res logits, got ",
               m.scalar_type());
  spec.prompt.mask_input = m.to(at::kFloat);
  // NaN or infinite logits would pass through the decoder into an all-NaN mask.
  NEPHRO_CHECK(spec.prompt.mask_input.numel() == 0 || spec.prompt.mask_input.isfinite().all().item<bool>(), what,
               ": mask input '", path, "' holds NaN or infinite values");
  spec.mask_input_path = path;
}

std::map<std::string, PromptSpec> parse_prompts_json(const std::string& text, const std::string& base_dir,
                                                     const std::string& what) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    NEPHRO_FAIL(what, " is not valid JSON (", json_error_text(e), ")");
  }
  NEPHRO_CHECK(j.is_object(), what, " must map image file names to prompt objects");
  std::map<std::string, PromptSpec> out;
  for (const auto& item : j.items()) out[item.key()] = prompt_from_json(item.value(), item.key(), base_dir, what);
  return out;
}

std::map<std::string, PromptSpec> read_prompts_file(const std::string& path) {
  std::ifstream in(path);
  NEPHRO_CHECK(in.good(), "--prompts: cannot open '", path, "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_prompts_json(ss.str(), fs::path(path).parent_path().string(), "--prompts: '" + path + "'");
}

void check_prompt_fits(const PromptSpec& spec, int width, int height, const SamConfig& config,
                       const std::string& image_path) {
  const SamPrompt& pr = spec.prompt;
  for (size_t i = 0; i < pr.points.size(); ++i) {
    const float x = pr.points[i][0], y = pr.points[i][1];
    NEPHRO_CHECK(x >= 0 && y >= 0 && x <= width && y <= height, "image '", image_path,
                 "': point (", x, ", ", y, ") lies outside the image (", width, " x ",
                 height, " px)");
  }
  if (pr.box) {
    const auto& b = *pr.box;
    NEPHRO_CHECK(b[0] <= b[2] && b[1] <= b[3], "image '", image_path, "': box (", b[0], ", ", b[1],
                 ", ", b[2], ", ", b[3], ") must have x0 <= x1 and y0 <= y1");
    NEPHRO_CHECK(b[0] >= 0 && b[1] >= 0 && b[2] <= width && b[3] <= height, "image '",
                 image_path, "': box (", b[0], ", ", b[1], ", ", b[2], ", ", b[3],
                 ") lies outside the image (", width, " x ", height, " px)");
  }
  if (config.preprocess == SamPreprocess::kMedSam) {
    NEPHRO_CHECK(pr.box && pr.points.empty() && !pr.mask_input.defined(), "image '", image_path,
                 "': MedSAM takes a box prompt only");
    NEPHRO_CHECK(!pr.multimask, "image '", image_path, "': MedSAM predicts one mask (no --multimask)");
  }
  if (pr.mask_input.defined()) {
    const int64_t L = config.low_res_size();
    const auto& m = pr.mask_input;
    NEPHRO_CHECK((m.dim() == 3 && m.size(0) == 1 && m.size(1) == L && m.size(2) == L) ||
                     (m.dim() == 2 && m.size(0) == L && m.size(1) == L),
                 "mask input '", spec.mask_input_path, "' has shape ", m.sizes(),
                 ", expected [1, ", L, ", ", L, "] for model '", config.name, "'");
  }
}

}  // namespace nephroseg::sam
