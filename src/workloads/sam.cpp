// SAM / MedSAM over images (see nephroseg/workloads/sam.h).
#include "nephroseg/workloads/sam.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <filesystem>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

#include "nephroseg/checkpoint/state_dict.h"
#include "nephroseg/core/atomic_file.h"
#include "nephroseg/core/error.h"
#include "nephroseg/io/geojson.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/inputs.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/io/npy.h"
#include "nephroseg/io/overlay.h"
#include "nephroseg/io/tensor_mat.h"

namespace nephroseg::workloads {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using sam::PromptSpec;

bool has_prompt(const PromptSpec& p) {
  return !p.prompt.points.empty() || p.prompt.box || p.prompt.mask_input.defined();
}

// result.json's "model": the same in prompt and automask mode.
json model_json(const SamBatchOptions& o, const sam::SamConfig& cfg) {
  return {{"type", o.model_config.empty() ? o.model_type : cfg.name},
          {"checkpoint", o.checkpoint},
          {"img_size", cfg.img_size},
          {"preprocess", sam::preprocess_names().name(cfg.preprocess)}};
}

json prompt_json(const PromptSpec& ip) {
  json pts = json::array();
  for (size_t i = 0; i < ip.prompt.points.size(); ++i)
    pts.push_back({ip.prompt.points[i][0], ip.prompt.points[i][1], ip.prompt.labels[i]});
  json j;
  j["points"] = pts;
  j["box"] =
      ip.prompt.box ? json(std::vector<float>(ip.prompt.box->begin(), ip.prompt.box->end())) : json(nullptr);
  j["mask_input"] = ip.mask_input_path.empty() ? json(nullptr) : json(ip.mask_input_path);
  j["multimask"] = ip.prompt.multimask;
  return j;
}

cv::Mat make_overlay(const cv::Mat& rgb, const cv::Mat& mask, const PromptSpec& ip) {
  cv::Mat canvas = io::overlay_mask(rgb, mask, io::colors::kCyan, 0.4, 2);
  const int radius = std::max(3, std::min(canvas.cols, canvas.rows) / 120);
  std::vector<cv::Point2f> pts;
  std::vector<io::Rgb> cols;
  std::vector<std::string> labels;
  for (size_t i = 0; i < ip.prompt.points.size(); ++i) {
    pts.emplace_back(ip.prompt.points[i][0], ip.prompt.points[i][1]);
    const int l = ip.prompt.labels[i];
    cols.push_back(l == 1 ? io::colors::kGreen : l == 0 ? io::colors::kRed : io::colors::kWhite);
    labels.push_back(l == 1 ? "+" : l == 0 ? "-" : "x");
  }
  if (!pts.empty()) io::draw_points(canvas, pts, labels, io::colors::kYellow, radius, cols);
  if (ip.prompt.box) {
    const auto& b = *ip.prompt.box;
    const cv::Point2f c[4] = {{b[0], b[1]}, {b[2], b[1]}, {b[2], b[3]}, {b[0], b[3]}};
    for (int i = 0; i < 4; ++i) io::draw_segment(canvas, c[i], c[(i + 1) % 4], io::colors::kYellow, 2);
  }
  return canvas;
}

// Writes every output of one image into `dir` (each file atomically).
void write_outputs(const std::string& dir, const std::string& image_path, const cv::Mat& rgb,
                   const PromptSpec& ip, const sam::ImageEmbedding& emb, const sam::SamResult& r,
                   const SamBatchOptions& o, const sam::SamConfig& cfg) {
  fs::create_directories(dir);
  const int64_t best = r.best_index();
  std::vector<int64_t> areas;
  for (int64_t k = 0; k < r.masks.size(0); ++k) {
    const cv::Mat m = io::tensor_to_mat(r.masks[k]);  // bool -> 0/255
    areas.push_back(cv::countNonZero(m));
    io::write_mask_png(dir + "/masks/mask_" + std::to_string(k) + ".png", m);
  }
  const cv::Mat best_mask = io::tensor_to_mat(r.masks[best]);
  io::write_mask_png(dir + "/mask.png", best_mask);
  io::write_npy(dir + "/low_res_logits.npy", r.low_res_logits);
  io::write_png(dir + "/overlay.png", make_overlay(rgb, best_mask, ip));

  json j;
  j["image"] = image_path;
  j["model"] = model_json(o, cfg);
  j["original_size"] = {emb.original_size[0], emb.original_size[1]};
  j["input_size"] = {emb.input_size[0], emb.input_size[1]};
  j["prompt"] = prompt_json(ip);
  const at::Tensor iou = r.iou.contiguous();
  j["iou_predictions"] = std::vector<float>(iou.data_ptr<float>(), iou.data_ptr<float>() + iou.numel());
  j["best_index"] = best;
  j["mask_areas_px"] = areas;
  j["files"] = {{"mask", "mask.png"},
                {"masks", "masks/mask_<k>.png"},
                {"low_res_logits", "low_res_logits.npy"},
                {"overlay", "overlay.png"}};
  j["timings_s"] = {{"encode", emb.encode_seconds}, {"decode", r.seconds}};
  j["precision"] = precision_json(o.precision.used, o.precision.requested);
  write_file_atomically(dir + "/result.json", j.dump(2) + "\n");
}

// ---- Automatic masks (SamBatchOptions::automask) -----------------------------------

json automask_options_json(const sam::AutomaskOptions& a) {
  return {{"points_per_side", a.points_per_side},
          {"points_per_batch", a.points_per_batch},
          {"pred_iou_thresh", a.pred_iou_thresh},
          {"stability_score_thresh", a.stability_score_thresh},
          {"stability_score_offset", a.stability_score_offset},
          {"box_nms_thresh", a.box_nms_thresh},
          {"crop_n_layers", a.crop_n_layers},
          {"crop_nms_thresh", a.crop_nms_thresh},
          {"crop_overlap_ratio", a.crop_overlap_ratio},
          {"crop_n_points_downscale_factor", a.crop_n_points_downscale_factor},
          {"min_mask_region_area", a.min_mask_region_area},
          {"output_type", sam::automask_output_names().name(a.output_type)},
          {"include_image_edge", a.include_image_edge}};
}

// An automask run takes no prompts and a model with point prompts; its options are
// checked before the model loads.
void check_automask_request(const SamBatchOptions& o, const sam::SamConfig& config) {
  NEPHRO_CHECK(!has_prompt(o.prompt) && o.prompts_file.empty(),
               "automatic masks (--auto) prompt a grid of points themselves: give no --point, --box, "
               "--mask-input or --prompts with them");
  o.automask_options.validate();
  NEPHRO_CHECK(config.preprocess == sam::SamPreprocess::kSam,
               "automatic masks (--auto) need a SAM model with point prompts; MedSAM takes boxes only");
}

// Label image of the masks: mask k -> k + 1; the highest predicted IoU wins overlaps
// (ties: the lower k), so masks are painted from the lowest IoU up.
cv::Mat automask_labels(const std::vector<sam::AutoMask>& masks, int rows, int cols) {
  NEPHRO_CHECK(masks.size() <= 65535, "automatic masks: ", masks.size(),
               " masks do not fit a 16-bit label image (at most 65535)");
  std::vector<size_t> order(masks.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return masks[a].predicted_iou > masks[b].predicted_iou; });
  cv::Mat labels = cv::Mat::zeros(rows, cols, masks.size() > 255 ? CV_16UC1 : CV_8UC1);
  for (auto it = order.rbegin(); it != order.rend(); ++it)
    labels.setTo(cv::Scalar(static_cast<double>(*it + 1)), io::tensor_to_mat(masks[*it].segmentation));
  return labels;
}

// Every mask's outline, traced on its own so that overlapping masks keep their shapes.
std::vector<io::PolygonObject> automask_outlines(const std::vector<sam::AutoMask>& masks) {
  std::vector<io::PolygonObject> out;
  for (size_t k = 0; k < masks.size(); ++k) {
    cv::Mat one;
    io::tensor_to_mat(masks[k].segmentation).convertTo(one, CV_32S, 1.0 / 255.0);
    one *= static_cast<int>(k + 1);
    for (io::PolygonObject& obj : io::trace_objects(one)) {
      obj.class_name = "SAM mask";
      obj.color = io::palette_color(static_cast<int>(k));
      obj.measurements.emplace_back("Predicted IoU", masks[k].predicted_iou);
      obj.measurements.emplace_back("Stability score", masks[k].stability_score);
      out.push_back(std::move(obj));
    }
  }
  return out;
}

// Boxes are whole pixels: written as integers, as segment-anything's records hold them.
json pixel_box(const std::array<double, 4>& b) {
  return {std::llround(b[0]), std::llround(b[1]), std::llround(b[2]), std::llround(b[3])};
}

json automask_record(const sam::AutoMask& m, size_t k) {
  return {{"index", k},
          {"label", k + 1},
          {"file", "masks/mask_" + std::to_string(k) + ".png"},
          {"area", m.area},
          {"bbox", pixel_box(m.bbox)},
          {"predicted_iou", m.predicted_iou},
          {"stability_score", m.stability_score},
          {"point_coords", json::array({json(m.point_coords)})},  // [[x, y]], as segment-anything's record
          {"crop_box", pixel_box(m.crop_box)}};
}

// Every automask output of one image into `dir`; result.json last.
void write_automask_outputs(const std::string& dir, const std::string& image_path, const cv::Mat& rgb,
                            const std::vector<sam::AutoMask>& masks, double seconds, const SamBatchOptions& o,
                            const sam::SamConfig& cfg) {
  fs::create_directories(dir);
  json records = json::array();
  for (size_t k = 0; k < masks.size(); ++k) {
    io::write_mask_png(dir + "/masks/mask_" + std::to_string(k) + ".png", io::tensor_to_mat(masks[k].segmentation));
    records.push_back(automask_record(masks[k], k));
  }
  const cv::Mat labels = automask_labels(masks, rgb.rows, rgb.cols);
  io::write_png(dir + "/labels.png", labels);
  write_file_atomically(dir + "/masks.json", records.dump(2) + "\n");
  write_file_atomically(dir + "/masks.geojson", io::to_geojson(automask_outlines(masks)));
  cv::Mat canvas = io::to_canvas(rgb);
  for (size_t k = 0; k < masks.size(); ++k)
    io::tint_mask(canvas, labels == static_cast<double>(k + 1), io::palette_color(static_cast<int>(k)), 0.4);
  io::write_png(dir + "/overlay.png", canvas);

  json j;
  j["image"] = image_path;
  j["model"] = model_json(o, cfg);
  j["original_size"] = {rgb.rows, rgb.cols};
  j["mode"] = "automask";
  j["automask"] = automask_options_json(o.automask_options);
  j["mask_count"] = masks.size();
  j["files"] = {{"masks", "masks/mask_<k>.png"},
                {"labels", "labels.png"},
                {"records", "masks.json"},
                {"geojson", "masks.geojson"},
                {"overlay", "overlay.png"}};
  j["timings_s"] = {{"generate", seconds}};
  j["precision"] = precision_json(o.precision.used, o.precision.requested);
  write_file_atomically(dir + "/result.json", j.dump(2) + "\n");
}

std::string automask_progress_line(size_t index, size_t total, const std::string& path, size_t count,
                                   double seconds, const std::string& dir) {
  std::ostringstream line;
  line << std::fixed << std::setprecision(2) << "[" << index + 1 << "/" << total << "] " << path << ": " << count
       << " automatic mask(s), " << seconds << " s -> " << dir;
  return line.str();
}

// A strict-binding error lists every key; keep its headline and the first three keys
// of each list.
std::string summarize_bind_error(const checkpoint::BindError& e) {
  std::ostringstream out;
  const std::string what = e.what();
  out << what.substr(0, what.find('\n'));
  auto list = [&](const char* title, const std::vector<std::string>& keys) {
    if (keys.empty()) return;
    out << "\n  " << keys.size() << " " << title << ":";
    for (size_t i = 0; i < keys.size() && i < 3; ++i) out << "\n    " << keys[i];
    if (keys.size() > 3) out << "\n    ... (" << keys.size() - 3 << " more)";
  };
  list("missing keys", e.missing());
  list("unexpected keys", e.unexpected());
  std::vector<std::string> mismatched;
  for (const auto& m : e.mismatched()) mismatched.push_back(m.key);
  list("keys with another shape or dtype", mismatched);
  return out.str();
}

// The images of the whole batch and where each one's outputs go: out_dir itself for
// one image, out_dir/<stem> for several.
struct Plan {
  std::vector<std::string> all;            // every image, in order
  std::map<std::string, std::string> dir;  // image -> its output folder
};

Plan plan_outputs(const SamBatchOptions& o) {
  Plan plan;
  for (const auto& in : o.images)
    for (const auto& item : io::list_inputs(in, "--image")) plan.all.push_back(item.path);
  std::set<std::string> used;
  for (const auto& path : plan.all) {
    std::string dir = o.out_dir;
    if (plan.all.size() > 1) {
      const std::string stem = io::file_stem(path);
      NEPHRO_CHECK(used.insert(stem).second, "--image: two images share the name '", stem,
                   "'; their outputs would collide in ", o.out_dir);
      dir = (fs::path(o.out_dir) / stem).string();
    }
    plan.dir[path] = dir;
  }
  return plan;
}

json settings_json(const SamBatchOptions& o) {
  return {{"images", o.images},
          {"prompts", o.prompts_file},
          {"prompt", prompt_json(o.prompt)},
          {"model",
           {{"checkpoint", o.checkpoint},
            {"type", o.model_type},
            {"config", o.model_config},
            {"preprocess", o.preprocess ? sam::preprocess_names().name(*o.preprocess) : std::string()}}},
          {"precision", precision_names().name(o.precision.used)},
          {"automask", o.automask ? automask_options_json(o.automask_options) : json(nullptr)}};
}

std::string progress_line(size_t index, size_t total, const std::string& path, const sam::ImageEmbedding& emb,
                          const sam::SamResult& r, const std::string& dir) {
  std::ostringstream line;
  line << std::fixed << std::setprecision(3) << "[" << index + 1 << "/" << total << "] " << path << ": "
       << r.masks.size(0) << " mask(s), best IoU " << r.iou[r.best_index()].item<float>() << ", encode "
       << std::setprecision(2) << emb.encode_seconds << " s, decode " << r.seconds << " s -> " << dir;
  return line.str();
}

}  // namespace

sam::SamConfig sam_batch_config(const SamBatchOptions& o) {
  sam::SamConfig config = o.model_config.empty() ? sam::SamConfig::preset(o.model_type)
                                                 : sam::SamConfig::from_json(o.model_config);
  if (o.preprocess) config.preprocess = *o.preprocess;
  return config;
}

SamBatchResult run_sam_batch(const SamBatchOptions& o, const EventSink& events) {
  std::map<std::string, PromptSpec> per_image;
  if (!o.prompts_file.empty()) per_image = sam::read_prompts_file(o.prompts_file);
  const auto prompt_for = [&](const std::string& path) -> const PromptSpec& {
    for (const std::string& key : {fs::path(path).filename().string(), io::file_stem(path), path}) {
      auto it = per_image.find(key);
      if (it != per_image.end()) return it->second;
    }
    NEPHRO_CHECK(has_prompt(o.prompt), "no prompt for image '", path,
                 "': give --point, --box or --mask-input, or list it in --prompts");
    return o.prompt;
  };

  const sam::SamConfig config = sam_batch_config(o);
  if (o.automask) check_automask_request(o, config);
  const Plan plan = plan_outputs(o);
  SamBatchResult result;
  result.inputs_total = plan.all.size();
  BatchRecord record("sam", o.shard, plan.all.size(), settings_json(o));
  std::vector<size_t> todo;  // this shard's images, minus those done (resume)
  for (size_t i = 0; i < plan.all.size(); ++i) {
    if (!o.shard.owns(i)) continue;
    const std::string& path = plan.all[i];
    if (o.resume && fs::is_regular_file(plan.dir.at(path) + "/result.json")) {
      record.add({i, io::file_stem(path), ItemStatus::kSkipped, "", nullptr});
      ++result.skipped;
      continue;
    }
    todo.push_back(i);
  }

  // Every image and prompt is checked before the (slow) model loads.
  for (size_t i : todo) {
    const cv::Mat rgb = io::read_image_rgb(plan.all[i]);
    if (o.automask) continue;  // the grid fits any image
    sam::check_prompt_fits(prompt_for(plan.all[i]), rgb.cols, rgb.rows, config, plan.all[i]);
  }
  std::shared_ptr<sam::SamModel> model;
  if (!todo.empty()) try {
      model = sam::SamModel::load(o.checkpoint, config, o.precision.used);
    } catch (const checkpoint::BindError& e) {
      throw Error(summarize_bind_error(e));
    }

  fs::create_directories(o.out_dir);
  remove_stale_temporaries(o.out_dir);
  const bool with_record = !o.shard.whole() || plan.all.size() > 1;
  if (with_record) record.write(o.out_dir, /*complete=*/false);
  for (size_t n = 0; n < todo.size(); ++n) {
    const std::string& path = plan.all[todo[n]];
    const std::string& dir = plan.dir.at(path);
    const cv::Mat rgb = io::read_image_rgb(path);
    if (o.automask) {
      const auto start = std::chrono::steady_clock::now();
      const std::vector<sam::AutoMask> masks =
          sam::generate_masks(*model, io::mat_to_tensor(rgb), o.automask_options);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      write_automask_outputs(dir, path, rgb, masks, seconds, o, config);
      record.add({todo[n], io::file_stem(path), ItemStatus::kOk, "", {{"mask_count", masks.size()}}});
      ++result.segmented;
      result.out_dirs.push_back(dir);
      emit(events, item_event(Event::Kind::kItemFinished, n, todo.size(), io::file_stem(path),
                              automask_progress_line(n, todo.size(), path, masks.size(), seconds, dir)));
      continue;
    }
    const PromptSpec& ip = prompt_for(path);
    const sam::ImageEmbedding emb = model->encode(io::mat_to_tensor(rgb));
    const sam::SamResult r = model->predict(emb, ip.prompt);
    write_outputs(dir, path, rgb, ip, emb, r, o, config);
    record.add({todo[n],
                io::file_stem(path),
                ItemStatus::kOk,
                "",
                {{"best_index", r.best_index()}, {"best_iou", r.iou[r.best_index()].item<float>()}}});
    ++result.segmented;
    result.out_dirs.push_back(dir);
    emit(events, item_event(Event::Kind::kItemFinished, n, todo.size(), io::file_stem(path),
                            progress_line(n, todo.size(), path, emb, r, dir)));
  }
  // The batch record (one image alone keeps its folder as before: result.json only).
  if (with_record) result.run_json = record.write(o.out_dir, /*complete=*/true);
  return result;
}

}  // namespace nephroseg::workloads
