// The workbench's annotation sessions (serve/workbench.h, docs/workbench.md): SAM clicks
// refined with the previous low-res logits, a brush and an eraser, undo / redo, and the
// mask saved as a PNG.
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cmath>

#include "nephroseg/core/error.h"
#include "nephroseg/gbmseg/model_backends.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/io/tensor_mat.h"
#include "nephroseg/sam/sam.h"
#include "serve/request.h"
#include "serve/workbench.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace nephroseg::serve {

namespace {
constexpr size_t kMaxSessions = 8;
constexpr size_t kHistoryBytes = size_t{256} << 20;  // undo masks per session, at most
constexpr size_t kHistoryStates = 32;                  // and at most this many
constexpr int kMaxPoints = 64;                         // SAM clicks per session
constexpr size_t kMaxStrokePoints = 20000;
constexpr int kMaxRadius = 512;
constexpr float kMaskLogit = 20.0F;  // |logit| of a mask turned into SAM's mask input
}  // namespace

struct Annotator::Session {
  std::string id;
  fs::path image;
  std::string entry;
  bool medsam = false;    // a MedSAM entry: a box alone, no mask input, one mask
  std::mutex mutex;
  cv::Mat mask;           // CV_8U 0/255, the image's size
  at::Tensor logits;      // [1, L, L] of the last SAM result (or from the start mask)
  /// A state undo / redo return to: the mask and the SAM logits the next click refines.
  struct State {
    cv::Mat mask;
    at::Tensor logits;
  };
  std::vector<State> undo, redo;
  int version = 0;

  size_t history_limit() const {
    return std::clamp<size_t>(kHistoryBytes / std::max<size_t>(1, mask.total()), 2, kHistoryStates);
  }
  void remember() {
    undo.push_back({mask.clone(), logits});
    redo.clear();
    while (undo.size() > history_limit()) undo.erase(undo.begin());
    ++version;
  }
  json state() const { return {{"session", id}, {"version", version}, {"area", cv::countNonZero(mask)}}; }
};

namespace {

/// A 0/255 mask as SAM's mask input: resized so its longer side is L (as SAM resizes
/// the image), padded at the bottom and right, +-kMaskLogit.
at::Tensor mask_logits(const cv::Mat& mask, int64_t L) {
  const double s = double(L) / std::max(mask.cols, mask.rows);
  const int w = std::max(1, static_cast<int>(std::lround(mask.cols * s)));
  const int h = std::max(1, static_cast<int>(std::lround(mask.rows * s)));
  cv::Mat small;
  cv::resize(mask, small, cv::Size(w, h), 0, 0, cv::INTER_AREA);
  at::Tensor out = at::full({1, L, L}, -kMaskLogit, at::kFloat);
  auto a = out.accessor<float, 3>();
  for (int y = 0; y < h && y < L; ++y)
    for (int x = 0; x < w && x < L; ++x) a[0][y][x] = small.at<uint8_t>(y, x) >= 128 ? kMaskLogit : -kMaskLogit;
  return out;
}

/// "points": [[x, y, label], ...] inside the image (label 1 / 0).
void read_clicks(const json& body, const cv::Size& size, sam::SamPrompt* prompt) {
  const json* points = field(body, "points");
  if (points && !points->is_null()) {
    if (!points->is_array()) fail(400, "\"points\" must be a list of [x, y, label]");
    if (points->size() > static_cast<size_t>(kMaxPoints))
      fail(400, "at most " + std::to_string(kMaxPoints) + " points per session (got " +
                    std::to_string(points->size()) + ")");
    for (const json& p : *points) {
      if (!p.is_array() || p.size() != 3 || !p[0].is_number() || !p[1].is_number() || !p[2].is_number_integer())
        fail(400, "each point must be [x, y, label] with numbers x, y and label 0 or 1");
      const double x = p[0].get<double>(), y = p[1].get<double>();
      const int label = p[2].get<int>();
      if (!std::isfinite(x) || !std::isfinite(y) || x < 0 || y < 0 || x > size.width || y > size.height)
        fail(400, "point (" + std::to_string(x) + ", " + std::to_string(y) + ") is outside the " +
                      std::to_string(size.width) + " x " + std::to_string(size.height) + " image");
      if (label != 0 && label != 1) fail(400, "a point's label must be 1 (positive) or 0 (negative)");
      prompt->points.push_back({static_cast<float>(x), static_cast<float>(y)});
      prompt->labels.push_back(label);
    }
  }
  const json* box = field(body, "box");
  if (box && !box->is_null()) {
    if (!box->is_array() || box->size() != 4) fail(400, "\"box\" must be [x0, y0, x1, y1]");
    std::array<float, 4> b{};
    for (size_t i = 0; i < 4; ++i) {
      if (!(*box)[i].is_number() || !std::isfinite((*box)[i].get<double>()))
        fail(400, "\"box\" must hold four finite numbers");
      b[i] = static_cast<float>((*box)[i].get<double>());
    }
    if (b[0] > b[2]) std::swap(b[0], b[2]);
    if (b[1] > b[3]) std::swap(b[1], b[3]);
    b[0] = std::clamp(b[0], 0.0F, float(size.width));
    b[2] = std::clamp(b[2], 0.0F, float(size.width));
    b[1] = std::clamp(b[1], 0.0F, float(size.height));
    b[3] = std::clamp(b[3], 0.0F, float(size.height));
    prompt->box = b;
  }
  if (prompt->points.empty() && !prompt->box) fail(400, "a click needs \"points\" or a \"box\"");
}

}  // namespace

Annotator::Annotator(const Roots& roots, ImageCache& images, const ModelAccess& models)
    : roots_(roots), images_(images), models_(models) {}
Annotator::~Annotator() = default;

std::shared_ptr<Annotator::Session> Annotator::find(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = sessions_.begin(); it != sessions_.end(); ++it)
    if ((*it)->id == id) {
      sessions_.splice(sessions_.begin(), sessions_, it);
      return sessions_.front();
    }
  fail(404, "no annotation session \"" + id.substr(0, 40) + "\" (sessions end when " + std::to_string(kMaxSessions) +
                " newer ones exist; start one again)");
}

cv::Mat Annotator::mask_of(const std::string& id) {
  auto s = find(id);
  std::lock_guard<std::mutex> lock(s->mutex);
  return s->mask.clone();
}

void Annotator::handle(const std::string& action, const httplib::Request& req, httplib::Response& res) {
  if (action == "mask" || action == "tile") {
    auto s = find(query(req, "session"));
    std::lock_guard<std::mutex> lock(s->mutex);
    if (action == "mask") return reply_bytes(res, encode(s->mask, ".png"), "image/png");
    const int z = static_cast<int>(query_int(req, "z", 0, 30));
    const int x = static_cast<int>(query_int(req, "x", 0, 1 << 20)), y = static_cast<int>(query_int(req, "y", 0, 1 << 20));
    return reply_bytes(res, encode(mask_tile(s->mask, z, x, y), ".png"), "image/png");
  }
  const json body = body_object(req);
  if (action == "start") {
    const std::string virt = required_string(body, "path");
    const fs::path file = roots_.resolve(virt);
    const std::string entry = required_string(body, "model");
    auto s = std::make_shared<Session>();
    s->image = file;
    s->entry = entry;
    const auto rgb = images_.rgb(file);
    if (entry != "classical") {
      models_.low_res_size(entry);  // 404 / 400 for an unknown or unfit entry; loads it
      for (const json& m : models_.list())
        if (m.value("name", "") == entry) s->medsam = m.value("kind", "") == "medsam";
    }
    s->mask = cv::Mat::zeros(rgb->rows, rgb->cols, CV_8U);
    const json* start = field(body, "mask");
    if (start && !start->is_null()) {
      if (!start->is_string()) fail(400, "\"mask\" must be a path");
      const auto m = images_.mask(roots_.resolve(start->get<std::string>()));
      if (m->size() != s->mask.size())
        fail(400, "the mask is " + std::to_string(m->cols) + " x " + std::to_string(m->rows) + ", the image " +
                      std::to_string(rgb->cols) + " x " + std::to_string(rgb->rows));
      m->copyTo(s->mask);
      if (entry != "classical" && !s->medsam) s->logits = mask_logits(s->mask, models_.low_res_size(entry));
    }
    json out;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      s->id = "s" + std::to_string(next_id_++);
      sessions_.push_front(s);
      while (sessions_.size() > kMaxSessions) sessions_.pop_back();
      out = s->state();
    }
    out["width"] = rgb->cols;
    out["height"] = rgb->rows;
    return reply_json(res, out);
  }
  auto s = find(required_string(body, "session"));
  if (action == "close") {
    std::lock_guard<std::mutex> lock(mutex_);
    sessions_.remove(s);
    return reply_json(res, {{"closed", s->id}});
  }
  if (action == "click") {
    const auto rgb = images_.rgb(s->image);
    sam::SamPrompt prompt;
    read_clicks(body, rgb->size(), &prompt);
    const auto t0 = std::chrono::steady_clock::now();
    cv::Mat mask;
    double iou = NAN;
    at::Tensor logits;
    if (s->entry == "classical") {
      if (prompt.box) fail(400, "the weight-free segmenter takes points, not a box");
      std::vector<cv::Point2f> pts;
      for (const auto& p : prompt.points) pts.emplace_back(p[0], p[1]);
      gbmseg::BackendSpec spec;
      spec.kind = "classical";
      mask = gbmseg::make_point_segmenter(spec)->segment(*rgb, pts, prompt.labels);
    } else if (s->medsam) {
      // MedSAM's protocol: a box and nothing else (sam::SamModel::predict refuses the rest).
      if (!prompt.box || !prompt.points.empty())
        fail(400, "model " + s->entry + " is MedSAM: it segments from a box alone (drag a box; points are not a "
                  "MedSAM prompt)");
      const sam::SamResult r = models_.predict(s->entry, *rgb, ImageCache::key_of(s->image), prompt);
      mask = io::tensor_to_mat(r.masks[0]);
      iou = r.iou[0].item<double>();
    } else {
      {
        std::lock_guard<std::mutex> lock(s->mutex);
        prompt.mask_input = s->logits;
      }
      prompt.multimask = prompt.points.size() == 1 && !prompt.box && !prompt.mask_input.defined();
      const sam::SamResult r = models_.predict(s->entry, *rgb, ImageCache::key_of(s->image), prompt);
      const int64_t k = prompt.multimask ? r.best_index() : 0;
      mask = io::tensor_to_mat(r.masks[k]);
      iou = r.iou[k].item<double>();
      logits = r.low_res_logits[k].unsqueeze(0).clone();
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::lock_guard<std::mutex> lock(s->mutex);
    s->remember();
    s->mask = mask != 0;
    if (logits.defined()) s->logits = logits;
    json out = s->state();
    out["iou"] = std::isfinite(iou) ? json(iou) : json();
    out["ms"] = ms;
    return reply_json(res, out);
  }
  if (action == "brush") {
    const json* points = field(body, "points");
    if (!points || !points->is_array() || points->empty()) fail(400, "\"points\" must be a non-empty list of [x, y]");
    if (points->size() > kMaxStrokePoints)
      fail(400, "a stroke has at most " + std::to_string(kMaxStrokePoints) + " points");
    const double radius = required_number(body, "radius");
    if (radius < 0.5 || radius > kMaxRadius) fail(400, "\"radius\" must be in 0.5.." + std::to_string(kMaxRadius));
    const json* erase = field(body, "erase");
    if (erase && !erase->is_boolean()) fail(400, "\"erase\" must be true or false");
    std::vector<cv::Point> stroke;
    for (const json& p : *points) {
      if (!p.is_array() || p.size() != 2 || !p[0].is_number() || !p[1].is_number())
        fail(400, "each stroke point must be [x, y]");
      const double x = p[0].get<double>(), y = p[1].get<double>();
      if (!std::isfinite(x) || !std::isfinite(y) || std::abs(x) > 1e7 || std::abs(y) > 1e7)
        fail(400, "stroke points must be finite image coordinates");
      stroke.emplace_back(static_cast<int>(std::floor(x)), static_cast<int>(std::floor(y)));
    }
    const uint8_t value = erase && erase->get<bool>() ? 0 : 255;
    const int r = std::max(0, static_cast<int>(std::lround(radius)) - 1);
    std::lock_guard<std::mutex> lock(s->mutex);
    s->remember();
    for (size_t i = 0; i < stroke.size(); ++i) {
      cv::circle(s->mask, stroke[i], r, cv::Scalar(value), cv::FILLED, cv::LINE_8);
      if (i > 0) cv::line(s->mask, stroke[i - 1], stroke[i], cv::Scalar(value), 2 * r + 1, cv::LINE_8);
    }
    return reply_json(res, s->state());
  }
  if (action == "undo" || action == "redo") {
    std::lock_guard<std::mutex> lock(s->mutex);
    auto& from = action == "undo" ? s->undo : s->redo;
    auto& to = action == "undo" ? s->redo : s->undo;
    if (!from.empty()) {
      to.push_back({s->mask, s->logits});
      s->mask = from.back().mask;
      s->logits = from.back().logits;
      from.pop_back();
      ++s->version;
    }
    json out = s->state();
    out["can_undo"] = !s->undo.empty();
    out["can_redo"] = !s->redo.empty();
    return reply_json(res, out);
  }
  if (action == "save") {
    std::string out_virt;
    const json* out = field(body, "out");
    if (out && !out->is_null()) {
      if (!out->is_string()) fail(400, "\"out\" must be a path");
      out_virt = out->get<std::string>();
    } else {
      out_virt = roots_.virtual_of(s->image.parent_path() / (s->image.stem().string() + ".mask.png"));
    }
    if (out_virt.size() < 5 || out_virt.compare(out_virt.size() - 4, 4, ".png") != 0)
      fail(400, "the mask is saved as a .png file (got \"" + out_virt.substr(0, 200) + "\")");
    const fs::path target = roots_.resolve(out_virt, /*must_exist=*/false);
    if (!fs::is_directory(target.parent_path())) fail(404, "'" + out_virt + "': its folder does not exist");
    if (target == s->image) fail(400, "refusing to write the mask over its own image");
    cv::Mat mask;
    {
      std::lock_guard<std::mutex> lock(s->mutex);
      mask = s->mask.clone();
    }
    try {
      io::write_mask_png(target.string(), mask);
    } catch (const Error& e) {
      fail(400, e.what());
    }
    return reply_json(res, {{"path", out_virt}, {"area", cv::countNonZero(mask)}});
  }
  fail(404, "no route /api/annotate/" + action);
}

}  // namespace nephroseg::serve
