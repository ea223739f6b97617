#include "serve/request.h"

#include <opencv2/core.hpp>

#include <cmath>
#include <limits>

#include "nephroseg/core/error.h"
#include "nephroseg/io/tensor_mat.h"
#include "serve/wire.h"

using nlohmann::json;

namespace nephroseg::serve {

namespace {

constexpr int kMaxDepth = 64;

// The deepest nesting of [ and { outside strings, counted without parsing.
int nesting_depth(const std::string& text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') deepest = std::max(deepest, ++depth);
    else if (c == ']' || c == '}') --depth;
  }
  return deepest;
}

double number_of(const json& v, const std::string& what) {
  if (!v.is_number()) fail(400, what + " must be a number");
  const double d = v.get<double>();
  if (!std::isfinite(d)) fail(400, what + " must be a finite number");
  return d;
}

// A whole number in int's range (a cast of anything else would be undefined).
int int_of(const json& v, const std::string& what) {
  const double d = number_of(v, what);
  if (d != std::floor(d) || d < std::numeric_limits<int>::min() || d > std::numeric_limits<int>::max())
    fail(400, what + " must be a whole number (got " + v.dump() + ")");
  return static_cast<int>(d);
}

std::string field_name(const char* key) { return std::string("field \"") + key + "\""; }

void bind_double(const json& body, const char* key, double& out) {
  if (const json* v = field(body, key)) out = number_of(*v, field_name(key));
}
void bind_int(const json& body, const char* key, int& out) {
  if (const json* v = field(body, key)) out = int_of(*v, field_name(key));
}

std::array<float, 2> point_of(const json& p, size_t i) {
  const std::string name = "point_coords[" + std::to_string(i) + "]";
  if (!p.is_array() || p.size() != 2) fail(400, name + " must be [x, y]");
  return {static_cast<float>(number_of(p[0], name + "[0]")), static_cast<float>(number_of(p[1], name + "[1]"))};
}

void read_box(const json& body, sam::SamPrompt& prompt) {
  const json* bbox = field(body, "bbox");
  if (!bbox) return;
  if (!bbox->is_array() || bbox->size() != 4) fail(400, "field \"bbox\" must be [x0, y0, x1, y1]");
  std::array<float, 4> b{};
  for (int i = 0; i < 4; ++i) b[i] = static_cast<float>(number_of((*bbox)[i], "bbox[" + std::to_string(i) + "]"));
  prompt.box = b;
}

void read_points(const json& body, sam::SamPrompt& prompt) {
  if (const json* points = field(body, "point_coords")) {
    if (!points->is_array()) fail(400, "field \"point_coords\" must be a list of [x, y]");
    if (points->size() > kMaxPoints)
      fail(400, "point_coords has " + std::to_string(points->size()) + " points; at most " +
                    std::to_string(kMaxPoints) + " are accepted");
    for (size_t i = 0; i < points->size(); ++i) prompt.points.push_back(point_of((*points)[i], i));
  }
  if (const json* labels = field(body, "point_labels")) {
    if (!labels->is_array()) fail(400, "field \"point_labels\" must be a list of 0/1");
    if (labels->size() > kMaxPoints) fail(400, "point_labels has more than " + std::to_string(kMaxPoints) + " labels");
    for (size_t i = 0; i < labels->size(); ++i)
      prompt.labels.push_back(int_of((*labels)[i], "point_labels[" + std::to_string(i) + "]"));
  }
  if (prompt.labels.size() != prompt.points.size())
    fail(400, "point_coords has " + std::to_string(prompt.points.size()) + " point(s) but point_labels " +
                  std::to_string(prompt.labels.size()) + " label(s)");
}

// b64mask: the previous answer's low-res logits as a PNG, side x side.
void read_mask_input(const json& body, int64_t side, sam::SamPrompt& prompt) {
  const json* mask = field(body, "b64mask");
  if (!mask) return;
  if (!mask->is_string()) fail(400, "field \"b64mask\" must be a base64 string");
  const std::string bytes = wire::base64_decode(mask->get<std::string>(), "b64mask");
  const wire::ImageHeader h = wire::read_image_header(bytes, "b64mask");
  if (h.width != side || h.height != side)
    fail(400, "b64mask must be " + std::to_string(side) + " x " + std::to_string(side) +
                  " (the model's low-res logits), not " + std::to_string(h.width) + " x " + std::to_string(h.height));
  const cv::Mat m = wire::decode_grey(bytes, "b64mask");
  cv::Mat f;
  m.convertTo(f, CV_32F);
  prompt.mask_input = io::mat_to_tensor(f).reshape({1, side, side}).clone();
}

}  // namespace

void fail(int status, std::string detail) { throw RequestError{status, std::move(detail)}; }

json parse_body(const std::string& text) {
  if (nesting_depth(text) > kMaxDepth)
    fail(400, "the request body nests deeper than " + std::to_string(kMaxDepth) + " levels");
  json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) fail(400, "the request body is not valid JSON");
  if (!body.is_object()) fail(400, "the request body must be a JSON object");
  return body;
}

const json* field(const json& body, const char* key) {
  auto it = body.find(key);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

std::string string_of(const json& body, const char* key, const std::string& fallback) {
  const json* v = field(body, key);
  if (!v) return fallback;
  if (!v->is_string()) fail(400, field_name(key) + " must be a string");
  return v->get<std::string>();
}

void bind_bool(const json& body, const char* key, bool& out) {
  if (const json* v = field(body, key)) {
    if (!v->is_boolean()) fail(400, field_name(key) + " must be true or false");
    out = v->get<bool>();
  }
}

sam::SamPrompt parse_prompt(const json& body, int64_t low_res_size) {
  sam::SamPrompt prompt;
  read_box(body, prompt);
  read_points(body, prompt);
  read_mask_input(body, low_res_size, prompt);
  bind_bool(body, "multimask_output", prompt.multimask);
  if (prompt.points.empty() && !prompt.box && !prompt.mask_input.defined())
    fail(400, "no prompt: give bbox, point_coords with point_labels, or b64mask");
  return prompt;
}

sam::AutomaskOptions parse_automask_options(const json& body) {
  sam::AutomaskOptions o;  // absent fields keep the library's defaults
  bind_int(body, "points_per_side", o.points_per_side);
  bind_int(body, "points_per_batch", o.points_per_batch);
  bind_double(body, "pred_iou_thresh", o.pred_iou_thresh);
  bind_double(body, "stability_score_thresh", o.stability_score_thresh);
  bind_double(body, "stability_score_offset", o.stability_score_offset);
  bind_double(body, "box_nms_thresh", o.box_nms_thresh);
  bind_int(body, "crop_n_layers", o.crop_n_layers);
  bind_double(body, "crop_nms_thresh", o.crop_nms_thresh);
  bind_double(body, "crop_overlap_ratio", o.crop_overlap_ratio);
  bind_int(body, "crop_n_points_downscale_factor", o.crop_n_points_downscale_factor);
  bind_int(body, "min_mask_region_area", o.min_mask_region_area);
  bind_bool(body, "include_image_edge", o.include_image_edge);
  const std::string output = string_of(body, "output_type", "");
  try {
    if (!output.empty()) o.output_type = sam::automask_output_names().parse(output);
    o.validate();
  } catch (const Error& e) {
    fail(400, e.what());
  }
  return o;
}

}  // namespace nephroseg::serve
