// `nephroseg sam`: prompt SAM / MedSAM with points, a box and/or a low-res mask on
// one or many images; writes masks, low-res logits, a JSON summary and an overlay.
//
// Per-image prompts (--prompts FILE.json, parsed by sam::read_prompts_file in
// nephroseg/sam/prompts_file.h) map an image's file name (or its stem, or the path as
// given on the command line) to its prompts; images not listed use the
// --point/--box/--mask-input/--multimask given on the command line:
//
//   {
//     "slide_01.png": {"points": [[120, 80, 1], [40, 200, 0]], "box": [10, 20, 300, 260],
//                      "multimask": true},
//     "slide_02":     {"box": [5, 5, 90, 70], "mask_input": "prev_logits.npy"}
//   }
//
// points are [x, y, label] (label 1 foreground, 0 background, -1 ignored; [x, y]
// means label 1) in original-image pixels; "mask_input" paths are relative to the
// JSON file's folder. Every image is validated (readable, prompts inside it) before
// the model runs; outputs are written file by file atomically.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "command.h"
#include "options.h"
#include "nephroseg/core/batch_record.h"
#include "nephroseg/core/shard.h"
#include "nephroseg/checkpoint/state_dict.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/core/atomic_file.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/inputs.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/io/npy.h"
#include "nephroseg/io/overlay.h"
#include "nephroseg/io/tensor_mat.h"
#include "nephroseg/sam/prompts_file.h"
#include "nephroseg/sam/sam.h"

namespace nephroseg::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct SamParams {
  ModelSelection model{"", "vit_b", ""};
  std::string out, prompts_file, box, mask_input;
  std::vector<std::string> images, points;
  std::string shard;
  bool multimask = false, resume = false;
};

using ImagePrompt = sam::PromptSpec;  // a prompt and where its mask input came from

std::vector<std::string> expand_images(const std::vector<std::string>& inputs) {
  std::vector<std::string> out;
  for (const auto& in : inputs)
    for (const auto& item : io::list_inputs(in, "--image")) out.push_back(item.path);
  return out;
}

cv::Mat mask_to_mat(const at::Tensor& mask) { return io::tensor_to_mat(mask); }  // bool -> 0/255

json prompt_json(const ImagePrompt& ip) {
  json j;
  json pts = json::array();
  for (size_t i = 0; i < ip.prompt.points.size(); ++i) {
    pts.push_back({ip.prompt.points[i][0], ip.prompt.points[i][1], ip.prompt.labels[i]});
  }
  j["points"] = pts;
  j["box"] = ip.prompt.box ? json(std::vector<float>(ip.prompt.box->begin(), ip.prompt.box->end()))
                           : json(nullptr);
  j["mask_input"] = ip.mask_input_path.empty() ? json(nullptr) : json(ip.mask_input_path);
  j["multimask"] = ip.prompt.multimask;
  return j;
}

cv::Mat make_overlay(const cv::Mat& rgb, const cv::Mat& mask, const ImagePrompt& ip) {
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
                   const ImagePrompt& ip, const sam::ImageEmbedding& emb, const sam::SamResult& r,
                   const SamParams& p, const sam::SamConfig& cfg) {
  fs::create_directories(dir);
  const int64_t best = r.best_index();
  const int64_t n = r.masks.size(0);
  std::vector<int64_t> areas;
  for (int64_t k = 0; k < n; ++k) {
    const cv::Mat m = mask_to_mat(r.masks[k]);
    areas.push_back(cv::countNonZero(m));
    io::write_mask_png(dir + "/masks/mask_" + std::to_string(k) + ".png", m);
  }
  const cv::Mat best_mask = mask_to_mat(r.masks[best]);
  io::write_mask_png(dir + "/mask.png", best_mask);
  io::write_npy(dir + "/low_res_logits.npy", r.low_res_logits);
  io::write_png(dir + "/overlay.png", make_overlay(rgb, best_mask, ip));

  json j;
  j["image"] = image_path;
  j["model"] = {{"type", p.model.config.empty() ? p.model.type : cfg.name},
                {"checkpoint", p.model.checkpoint},
                {"img_size", cfg.img_size},
                {"preprocess", sam::preprocess_names().name(cfg.preprocess)}};
  j["original_size"] = {emb.original_size[0], emb.original_size[1]};
  j["input_size"] = {emb.input_size[0], emb.input_size[1]};
  j["prompt"] = prompt_json(ip);
  const at::Tensor iou = r.iou.contiguous();
  j["iou_predictions"] = std::vector<float>(iou.data_ptr<float>(), iou.data_ptr<float>() + iou.numel());
  j["best_index"] = best;
  j["mask_areas_px"] = areas;
  j["files"] = {{"mask", "mask.png"}, {"masks", "masks/mask_<k>.png"},
                {"low_res_logits", "low_res_logits.npy"}, {"overlay", "overlay.png"}};
  j["timings_s"] = {{"encode", emb.encode_seconds}, {"decode", r.seconds}};
  j["precision"] = global_options().precision_record();
  write_file_atomically(dir + "/result.json", j.dump(2) + "\n");
}

// A strict-binding error lists every key; on the terminal keep its headline and the
// first three keys of each list.
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

Runner setup(CLI::App& app) {
  auto p = std::make_shared<SamParams>();
  add_model_options(app, p->model, {"", "SAM / MedSAM checkpoint (.pth)", "vit_b | vit_l | vit_h | medsam"});
  app.add_option("--image", p->images, "image file or folder (repeatable)")->required();
  app.add_option("--point", p->points,
                 "point prompt X,Y[,LABEL] in original pixels (LABEL 1 fg, 0 bg; repeatable)");
  app.add_option("--box", p->box, "box prompt X0,Y0,X1,Y1 in original pixels");
  app.add_option("--mask-input", p->mask_input, ".npy float32 [1,h,w] low-res logits prompt");
  app.add_flag("--multimask", p->multimask, "return several masks (mask.png = highest IoU)");
  app.add_option("--prompts", p->prompts_file,
                 "JSON: {\"<file name>\": {\"points\": [[x,y,label],...], \"box\": [x0,y0,x1,y1]}}");
  add_out_option(app, p->out);
  add_shard_option(app, p->shard, "images");
  app.add_flag("--resume", p->resume, "skip images whose result.json an earlier run wrote (reruns of a batch)");

  return [p]() {
    const Shard shard = parse_shard(p->shard);
    // Defaults from the command line.
    ImagePrompt cli_prompt;
    for (const auto& s : p->points) sam::add_point(cli_prompt, parse_numbers(s, "--point"), "--point");
    if (!p->box.empty()) sam::set_box(cli_prompt, parse_numbers(p->box, "--box"), "--box");
    if (!p->mask_input.empty()) sam::set_mask_input(cli_prompt, p->mask_input, "--mask-input");
    cli_prompt.prompt.multimask = p->multimask;
    const bool cli_has_prompt = !cli_prompt.prompt.points.empty() || cli_prompt.prompt.box ||
                                cli_prompt.prompt.mask_input.defined();

    std::map<std::string, ImagePrompt> per_image;
    if (!p->prompts_file.empty()) per_image = sam::read_prompts_file(p->prompts_file);

    const std::vector<std::string> all_images = expand_images(p->images);
    std::vector<std::string> images;  // this shard's, minus those done (--resume)
    std::vector<size_t> image_index;  // their positions in all_images
    const auto prompt_for = [&](const std::string& path) -> const ImagePrompt& {
      for (const std::string& key :
           {fs::path(path).filename().string(), io::file_stem(path), path}) {
        auto it = per_image.find(key);
        if (it != per_image.end()) return it->second;
      }
      NEPHRO_CHECK(cli_has_prompt, "no prompt for image '", path,
                   "': give --point, --box or --mask-input, or list it in --prompts");
      return cli_prompt;
    };

    const sam::SamConfig config = p->model.config.empty()
                                      ? sam::SamConfig::preset(p->model.type)
                                      : sam::SamConfig::from_json(p->model.config);
    // Output folders: DIR itself for one image, DIR/<stem> for several.
    std::map<std::string, std::string> out_dirs;
    std::set<std::string> used;
    for (const auto& path : all_images) {
      std::string dir = p->out;
      if (all_images.size() > 1) {
        const std::string stem = io::file_stem(path);
        NEPHRO_CHECK(used.insert(stem).second, "--image: two images share the name '", stem,
                     "'; their outputs would collide in ", p->out);
        dir = (fs::path(p->out) / stem).string();
      }
      out_dirs[path] = dir;
    }
    BatchRecord record("sam", shard, all_images.size(),
                       {{"images", p->images}, {"prompts", p->prompts_file}, {"points", p->points}, {"box", p->box},
                        {"mask_input", p->mask_input}, {"multimask", p->multimask},
                        {"model", {{"checkpoint", p->model.checkpoint}, {"type", p->model.type},
                                   {"config", p->model.config}}},
                        {"precision", precision_names().name(global_options().precision)}});
    for (size_t i = 0; i < all_images.size(); ++i) {
      if (!shard.owns(i)) continue;
      const std::string& path = all_images[i];
      if (p->resume && fs::is_regular_file(out_dirs[path] + "/result.json")) {
        record.add({i, io::file_stem(path), ItemStatus::kSkipped, "", nullptr});
        continue;
      }
      images.push_back(path);
      image_index.push_back(i);
    }

    // Validate every image and prompt before the (slow) model runs. A probe
    // embedding of the right geometry lets SamModel's own checks run unchanged.
    for (const auto& path : images) {
      const ImagePrompt& ip = prompt_for(path);
      const cv::Mat rgb = io::read_image_rgb(path);
      sam::check_prompt_fits(ip, rgb.cols, rgb.rows, config, path);
    }

    std::shared_ptr<sam::SamModel> model;
    if (!images.empty()) try {
      model = sam::SamModel::load(p->model.checkpoint, config, global_options().precision);
    } catch (const checkpoint::BindError& e) {
      throw nephroseg::Error(summarize_bind_error(e));
    }
    fs::create_directories(p->out);
    remove_stale_temporaries(p->out);
    if (!shard.whole() || all_images.size() > 1) record.write(p->out, /*complete=*/false);
    const bool progress = !global_options().quiet;
    size_t index = 0;
    for (const auto& path : images) {
      ++index;
      const ImagePrompt& ip = prompt_for(path);
      const cv::Mat rgb = io::read_image_rgb(path);
      const sam::ImageEmbedding emb = model->encode(io::mat_to_tensor(rgb));
      const sam::SamResult r = model->predict(emb, ip.prompt);
      write_outputs(out_dirs[path], path, rgb, ip, emb, r, *p, config);
      record.add({image_index[index - 1], io::file_stem(path), ItemStatus::kOk, "",
                  {{"best_index", r.best_index()},
                   {"best_iou", r.iou[r.best_index()].item<float>()}}});
      if (progress) {
        std::ostringstream line;
        line << std::fixed << std::setprecision(3) << "[" << index << "/" << images.size() << "] "
             << path << ": " << r.masks.size(0) << " mask(s), best IoU "
             << r.iou[r.best_index()].item<float>() << ", encode " << std::setprecision(2)
             << emb.encode_seconds << " s, decode " << r.seconds << " s -> " << out_dirs[path];
        log_info(line.str());
      }
    }
    // The batch record (one image alone keeps its folder as before: result.json only).
    if (!shard.whole() || all_images.size() > 1) record.write(p->out, /*complete=*/true);
    if (!shard.whole())
      log_info("sam: shard ", shard.text(), ": ", images.size(), " of ", all_images.size(), " image(s) segmented");
    return 0;
  };
}

NEPHRO_COMMAND("", "sam", "segment with SAM / MedSAM from point, box or mask prompts", setup);

}  // namespace
}  // namespace nephroseg::cli
