#include "nephroseg/serve/server.h"

#include <httplib.h>
#include <opencv2/core.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <list>
#include <thread>
#include <unordered_map>

#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/gbmseg/pipeline.h"
#include "nephroseg/glomsam/glomsam.h"
#include "nephroseg/glomsam/rough_boxes.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/io/tensor_mat.h"
#include "nephroseg/sam/automask.h"
#include "nephroseg/sam/sam.h"
#include "nephroseg/workloads/glomsam_predict.h"
#include "serve/registry.h"
#include "serve/request.h"
#include "serve/wire.h"
#include "serve/workbench.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace nephroseg::serve {

#ifndef NEPHROSEG_VERSION_TEXT
#define NEPHROSEG_VERSION_TEXT "0.1.0"
#endif

std::string server_version() { return NEPHROSEG_VERSION_TEXT; }

void ServeOptions::validate() const {
  NEPHRO_CHECK(port >= 0 && port <= 65535, "serve: port ", port, " is not in 0..65535");
  NEPHRO_CHECK(!host.empty(), "serve: host is empty");
  NEPHRO_CHECK(host == "127.0.0.1" || host == "localhost" || host == "::1" || !token.empty(), "serve: binding ",
               host, " makes the server reachable from other machines: give --token (a secret every request must "
               "carry), or bind 127.0.0.1");
  NEPHRO_CHECK(token.find_first_of("/?#% ") == std::string::npos, "serve: the token must not contain / ? # % or spaces");
  NEPHRO_CHECK(max_image_mp > 0, "serve: max_image_mp must be > 0 (got ", max_image_mp, ")");
  NEPHRO_CHECK(max_automask_mp > 0, "serve: max_automask_mp must be > 0 (got ", max_automask_mp, ")");
  NEPHRO_CHECK(max_body_mb > 0, "serve: max_body_mb must be > 0 (got ", max_body_mb, ")");
  NEPHRO_CHECK(cache_mb >= 0, "serve: cache_mb must be >= 0 (got ", cache_mb, ")");
  NEPHRO_CHECK(queue_depth >= 0, "serve: queue_depth must be >= 0 (got ", queue_depth, ")");
  NEPHRO_CHECK(http_threads >= 1, "serve: http_threads must be >= 1 (got ", http_threads, ")");
  NEPHRO_CHECK(models_dir.empty() || fs::is_directory(models_dir), "serve: --models ", models_dir, ": not a folder");
  NEPHRO_CHECK(weights_file.empty() || fs::is_regular_file(weights_file), "serve: --weights ", weights_file,
               ": no such file");
}

namespace {

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}
/// A JSON list of Features, each already JSON text (Server::Impl::feature).
using Features = std::vector<std::string>;
void send_features(httplib::Response& res, const Features& features) {
  size_t size = 2;
  for (const auto& f : features) size += f.size() + 1;
  std::string body;
  body.reserve(size);
  body += '[';
  for (size_t i = 0; i < features.size(); ++i) {
    if (i > 0) body += ',';
    body += features[i];
  }
  body += ']';
  res.status = 200;
  res.set_content(body, "application/json");
}

void send_text(httplib::Response& res, const std::string& text) {
  res.status = 200;
  res.set_content(text, "text/plain; charset=utf-8");
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

thread_local std::chrono::steady_clock::time_point t_request_start;

/// The embedding cache: LRU over (entry, pixels), bounded in bytes.
class EmbeddingCache {
 public:
  explicit EmbeddingCache(size_t limit) : limit_(limit) {}
  std::shared_ptr<const sam::ImageEmbedding> find(const std::string& key) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return it->second->second;
  }
  void put(const std::string& key, std::shared_ptr<const sam::ImageEmbedding> value) {
    const size_t size = bytes_of(*value);
    std::lock_guard<std::mutex> lock(mutex_);
    if (size > limit_ || index_.count(key)) return;
    order_.emplace_front(key, std::move(value));
    index_[key] = order_.begin();
    bytes_ += size;
    while (bytes_ > limit_ && !order_.empty()) {
      bytes_ -= bytes_of(*order_.back().second);
      index_.erase(order_.back().first);
      order_.pop_back();
    }
  }

 private:
  static size_t bytes_of(const sam::ImageEmbedding& e) {
    return static_cast<size_t>(e.embedding.numel()) * e.embedding.element_size();
  }
  std::mutex mutex_;
  size_t limit_;
  size_t bytes_ = 0;
  std::list<std::pair<std::string, std::shared_ptr<const sam::ImageEmbedding>>> order_;
  std::unordered_map<std::string, decltype(order_)::iterator> index_;
};

/// A model's slot: counts the request in, refuses past the queue depth, then runs
/// one request at a time.
class ModelSlot {
 public:
  ModelSlot(ModelEntry& entry, int queue_depth) : entry_(entry) {
    if (entry_.in_flight.fetch_add(1) + 1 > 1 + queue_depth) {
      entry_.in_flight.fetch_sub(1);
      fail(503, "model " + entry_.name + " is busy: " + std::to_string(queue_depth) +
                    " request(s) already wait for it; try again shortly");
    }
    lock_ = std::unique_lock<std::mutex>(entry_.run_mutex);
  }
  ~ModelSlot() {
    lock_.unlock();
    entry_.in_flight.fetch_sub(1);
  }

 private:
  ModelEntry& entry_;
  std::unique_lock<std::mutex> lock_;
};

}  // namespace

struct Server::Impl {
  ServeOptions options;
  mutable std::mutex registry_mutex;
  std::vector<std::unique_ptr<ModelEntry>> entries;
  EmbeddingCache cache;
  std::atomic<int64_t> hits{0}, misses{0};
  std::unique_ptr<Workbench> workbench;  // the page at / and its /api/ (after the entries)

  httplib::Server http;
  std::thread thread;
  std::mutex state_mutex;
  std::condition_variable stopped_cv;
  bool running = false;
  bool stopped = false;
  int bound_port = 0;

  explicit Impl(ServeOptions o)
      : options(std::move(o)), cache(static_cast<size_t>(options.cache_mb * 1024.0 * 1024.0)) {}

  // ---- routing ---------------------------------------------------------------------

  std::string strip_token(const std::string& path) const {
    const std::string& t = options.token;
    if (!t.empty() && path.size() > t.size() + 1 && path.compare(0, t.size() + 2, "/" + t + "/") == 0)
      return path.substr(t.size() + 1);
    return path;
  }
  std::string redacted(const std::string& path) const {
    const std::string stripped = strip_token(path);
    return stripped.size() != path.size() ? "/<token>" + stripped : path;
  }
  bool authorised(const httplib::Request& req) const {
    const std::string& t = options.token;
    if (t.empty()) return true;
    if (strip_token(req.path).size() != req.path.size()) return true;
    return constant_time_equal(req.get_header_value("Authorization"), "Bearer " + t);
  }

  void handle(const httplib::Request& req, httplib::Response& res) {
    try {
      if (!authorised(req)) {
        res.set_header("WWW-Authenticate", "Bearer");
        fail(401, "this server needs its token: send \"Authorization: Bearer <token>\" or use the server URL "
                  "http://<host>:<port>/<token>/sam/");
      }
      std::string path = strip_token(req.path);
      if (path.empty() || path.back() != '/') path += '/';
      if (workbench && workbench->handle(req.method, path, req, res)) return;
      dispatch(req.method, path, req, res);
    } catch (const RequestError& e) {
      send_json(res, e.status, {{"detail", e.detail}});
    } catch (const Error& e) {
      send_json(res, 400, {{"detail", e.what()}});
    } catch (const std::exception& e) {
      send_json(res, 500, {{"detail", std::string("internal error: ") + e.what()}});
    } catch (...) {
      send_json(res, 500, {{"detail", "internal error"}});
    }
  }

  void dispatch(const std::string& method, const std::string& path, const httplib::Request& req,
                httplib::Response& res) {
    const bool get = method == "GET", post = method == "POST";
    if (path == "/sam/version/" && get) return send_text(res, server_version());
    if (path == "/sam/weights/" && get) return list_weights(req, res);
    if (path == "/sam/weights/" && post) return register_weights(req, res);
    if (path == "/sam/weights/cancel/" && get) return send_text(res, "Cancel signal sent");
    if (path == "/sam/progress/" && get) return send_json(res, 200, {{"message", nullptr}, {"percent", -1}});
    if (path == "/sam/" && post) return predict(req, res);
    if (path == "/sam/automask/" && post) return automask(req, res);
    if (path == "/sam/sam3/" || path == "/sam/video/" || path == "/sam/sam3video/" || path == "/sam/upload/")
      fail(501, path + " (SAM 2 / SAM 3 / video) is not supported by nephroseg; supported: POST /sam/ with types " +
                    served_types_text());
    static const char* known[] = {"/sam/version/", "/sam/weights/", "/sam/weights/cancel/", "/sam/progress/",
                                  "/sam/", "/sam/automask/"};
    for (const char* k : known)
      if (path == k) fail(405, "method " + method + " is not allowed on " + path);
    fail(404, "no route " + method + " " + path + " (this server speaks samapi's /sam/ routes)");
  }

  // ---- bodies ----------------------------------------------------------------------

  static void check_type(const std::string& type) {
    switch (type_support(type)) {
      case TypeSupport::kServed:
        return;
      case TypeSupport::kNotSupported:
        fail(501, "type " + type + " is not supported by nephroseg; supported: " + served_types_text());
      case TypeSupport::kUnknown:
        fail(400, "unknown type \"" + type + "\" (samapi types: vit_h, vit_l, vit_b, vit_t, sam2_l, sam2_bp, "
                  "sam2_s, sam2_t, sam3; served here: " + served_types_text() + ")");
    }
  }

  ModelEntry& choose_entry(const std::string& type, const std::string& checkpoint_url) {
    std::lock_guard<std::mutex> lock(registry_mutex);
    if (!checkpoint_url.empty()) {
      for (auto& e : entries)
        if (e->url() == checkpoint_url && e->kind != "dinov2") return *e;
      fail(404, "no model " + checkpoint_url + " on this server (GET /sam/weights/ lists them as nephroseg:NAME)");
    }
    for (auto& e : entries)
      if (e->type == type) return *e;
    fail(404, "no model of type " + type + " on this server (" + names_locked() +
                  "); start it with --models DIR or --weights FILE.json");
  }

  std::string names_locked() const {
    if (entries.empty()) return "it has none";
    std::string s = "it has";
    for (const auto& e : entries) s += " " + e->name + " (" + e->type + ")";
    return s;
  }

  cv::Mat read_image(const json& body) const {
    const json* b64 = field(body, "b64img");
    if (!b64) fail(400, "field \"b64img\" is required (a base64 PNG or JPEG)");
    if (!b64->is_string()) fail(400, "field \"b64img\" must be a base64 string");
    const std::string bytes = wire::base64_decode(b64->get<std::string>(), "b64img");
    const wire::ImageHeader h = wire::read_image_header(bytes, "b64img");
    const double mp = double(h.width) * double(h.height) / 1e6;
    if (mp > options.max_image_mp) {
      char text[200];
      std::snprintf(text, sizeof text, "b64img: the %s is %lld x %lld (%.1f megapixels), over this server's limit "
                    "of %.1f (--max-image-mp)", h.format.c_str(), static_cast<long long>(h.width),
                    static_cast<long long>(h.height), mp, options.max_image_mp);
      fail(413, text);
    }
    return wire::decode_rgb(bytes, "b64img");
  }

  /// The image's embedding for this entry, from the cache or the encoder (the caller
  /// holds the model's slot).
  std::shared_ptr<const sam::ImageEmbedding> embedding(ModelEntry& entry, const sam::SamModel& model,
                                                       const cv::Mat& rgb) {
    const std::string key = entry.name + "|" + wire::pixel_digest(rgb);
    if (auto hit = cache.find(key)) {
      hits.fetch_add(1);
      return hit;
    }
    misses.fetch_add(1);
    auto emb = std::make_shared<const sam::ImageEmbedding>(model.encode(io::mat_view(rgb)));
    cache.put(key, emb);
    return emb;
  }

  /// The entry's model (or pipeline) by `load`, a failure answered 500 in our words.
  template <class Load>
  static auto loaded(ModelEntry& entry, Load load) {
    try {
      return load(entry);
    } catch (const Error& e) {
      fail(500, "model " + entry.name + " could not be loaded: " + e.what());
    }
  }
  std::shared_ptr<const sam::SamModel> model_of(ModelEntry& entry) { return loaded(entry, load_entry); }

  void held(const ModelEntry& entry) const {
    if (options.on_model_held) options.on_model_held(entry.name);
  }

  void predict(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req.body);
    const std::string type = string_of(body, "type", "vit_h");
    check_type(type);
    ModelEntry& entry = choose_entry(type, string_of(body, "checkpoint_url", ""));
    if (entry.kind == "glomsam") glomsam_box(entry, body);  // a bad prompt before the image
    const cv::Mat rgb = read_image(body);
    if (entry.kind == "glomsam") return send_features(res, glomsam_box_features(entry, body, rgb));
    if (entry.kind == "gbmseg") return send_features(res, gbmseg_features(entry, rgb));
    ModelSlot slot(entry, options.queue_depth);
    held(entry);
    const auto model = model_of(entry);
    const sam::SamPrompt prompt = parse_prompt(body, model->config().low_res_size());
    const auto emb = embedding(entry, *model, rgb);
    const sam::SamResult result = model->predict(*emb, prompt);
    Features features;
    for (int64_t i = 0; i < result.masks.size(0); ++i)
      features.push_back(feature(io::tensor_to_mat(result.masks[i]), i - 1, result.iou[i].item<double>(), entry.name));
    send_features(res, features);
  }

  void automask(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req.body);
    const std::string type = string_of(body, "type", "vit_h");
    check_type(type);
    ModelEntry& entry = choose_entry(type, string_of(body, "checkpoint_url", ""));
    const sam::AutomaskOptions automask_options = parse_automask_options(body);  // SAM's; checked for all
    const cv::Mat rgb = read_image(body);
    check_automask_size(rgb);
    if (entry.kind == "glomsam") return send_features(res, glomsam_automask_features(entry, rgb));
    if (entry.kind == "gbmseg") return send_features(res, gbmseg_features(entry, rgb));
    send_features(res, automask_features(entry, rgb, automask_options, body));
  }

  void check_automask_size(const cv::Mat& rgb) const {
    const double mp = double(rgb.cols) * double(rgb.rows) / 1e6;
    if (mp > options.max_automask_mp)
      fail(413, "automask: the image is " + std::to_string(rgb.cols) + " x " + std::to_string(rgb.rows) +
                    ", over this server's automask limit of " + std::to_string(options.max_automask_mp) +
                    " megapixels (--max-automask-mp); zoom in or send a smaller region");
  }

  // ---- GlomSAM and GBMSeg entries ----------------------------------------------------

  /// The clinician's box of the GlomSAM protocol from samapi's bbox; points are ignored
  /// beside a box, and points or a mask alone are refused (400).
  static glomsam::Box glomsam_box(const ModelEntry& entry, const json& body) {
    const std::string why = "model " + entry.name + " is GlomSAM: it takes a box (\"bbox\", the clinician's box "
                            "of the GlomSAM protocol)";
    if (field(body, "b64mask")) fail(400, why + "; b64mask is not a GlomSAM prompt");
    const sam::SamPrompt prompt = parse_prompt(body, 256);  // the mask side is unused here
    if (!prompt.box) fail(400, why + "; points alone are not a GlomSAM prompt");
    return *prompt.box;
  }

  static glomsam::PredictOptions glomsam_options(const std::optional<glomsam::Box>& box) {
    glomsam::PredictOptions po;
    po.box = box;
    po.tile_overlap = workloads::GlomSamPredictOptions{}.overlap;  // as `glomsam predict`
    return po;
  }

  /// POST /sam/ on a GlomSAM entry: GlomSamModel::predict with the box, as
  /// `glomsam predict --box` (rough mask, prompt generator and CNN branch inside).
  Features glomsam_box_features(ModelEntry& entry, const json& body, const cv::Mat& rgb) {
    const glomsam::Box box = glomsam_box(entry, body);
    ModelSlot slot(entry, options.queue_depth);
    held(entry);
    const auto model = loaded(entry, load_glomsam);
    const cv::Mat mask = io::tensor_to_mat(model->predict(rgb, glomsam_options(box)).mask);
    return {feature(mask, -1, nullptr, entry.name)};
  }

  /// POST /sam/automask/ on a GlomSAM entry: every glomerulus of the region, one box per
  /// component of the rough mask (glomsam/rough_boxes.h), GlomSAM per box.
  Features glomsam_automask_features(ModelEntry& entry, const cv::Mat& rgb) {
    ModelSlot slot(entry, options.queue_depth);
    held(entry);
    const auto model = loaded(entry, load_glomsam);
    const cv::Mat rough = glomsam::rough_mask(*model, rgb, workloads::GlomSamPredictOptions{}.overlap);
    Features features;
    for (const glomsam::Box& box : glomsam::component_boxes(rough)) {
      const cv::Mat mask = io::tensor_to_mat(model->predict(rgb, glomsam_options(box)).mask);
      if (cv::countNonZero(mask) > 0)
        features.push_back(feature(mask, static_cast<int64_t>(features.size()) - 1, nullptr, entry.name));
    }
    return features;
  }

  /// Both routes on a GBMSeg entry: the region segmented from the entry's references
  /// (computed once, kept in the entry); one Feature per 8-connected part of the mask.
  Features gbmseg_features(ModelEntry& entry, const cv::Mat& rgb) {
    ModelSlot slot(entry, options.queue_depth);
    held(entry);
    const auto pipeline = loaded(entry, load_gbmseg);
    const cv::Mat labels = io::label_instances(pipeline->segment(rgb).mask, 8);
    Features features;
    for (int label = 1; label <= io::max_label(labels); ++label)
      features.push_back(feature(labels == label, label - 2, nullptr, entry.name));
    return features;
  }

  /// SAM's automatic mask generator over the region, the whole-image embedding from
  /// the cache (crops are encoded by the generator).
  Features automask_features(ModelEntry& entry, const cv::Mat& rgb, const sam::AutomaskOptions& automask_options,
                         const json& /*body*/) {
    ModelSlot slot(entry, options.queue_depth);
    held(entry);
    const auto model = model_of(entry);
    const auto emb = embedding(entry, *model, rgb);
    const std::vector<sam::AutoMask> masks =
        sam::generate_masks(*model, io::mat_view(rgb), automask_options, emb.get());
    Features features;
    for (size_t i = 0; i < masks.size(); ++i)
      features.push_back(feature(io::tensor_to_mat(masks[i].segmentation), static_cast<int64_t>(i) - 1,
                                 masks[i].predicted_iou, entry.name));
    return features;
  }

  /// One samapi Feature: the mask's outline, samapi's object_idx numbering (mask i ->
  /// i - 1; QuPath shows it as a class), quality = predicted IoU (null: the model has
  /// none; QuPath then records no "SAM Quality").
  /// The Feature as JSON text: its geometry is written straight to text
  /// (wire::append_geometry), since an outline can have 10^5 vertices.
  static std::string feature(const cv::Mat& mask, int64_t object_idx, const json& quality, const std::string& model) {
    std::string text = R"({"type":"Feature","geometry":)";
    wire::append_geometry(mask, &text);
    text += R"(,"properties":)";
    text += json{{"object_idx", object_idx}, {"label", "object"}, {"quality", quality}, {"sam_model", model}}.dump();
    text += '}';
    return text;
  }

  // ---- the workbench's use of the registry ------------------------------------------

  ModelEntry& entry_named(const std::string& name) {
    std::lock_guard<std::mutex> lock(registry_mutex);
    for (auto& e : entries)
      if (e->name == name) return *e;
    fail(404, "no model \"" + name.substr(0, 100) + "\" on this server (" + names_locked() + ")");
  }

  ModelEntry& sam_entry_named(const std::string& name) {
    ModelEntry& e = entry_named(name);
    if (e.kind != "sam" && e.kind != "medsam")
      fail(400, "model " + e.name + " is " + e.kind + ", not SAM or MedSAM: it cannot segment from clicks");
    return e;
  }

  ModelAccess model_access() {
    ModelAccess a;
    a.predict = [this](const std::string& name, const cv::Mat& rgb, const std::string& key,
                       const sam::SamPrompt& prompt) {
      ModelEntry& entry = sam_entry_named(name);
      ModelSlot slot(entry, options.queue_depth);
      held(entry);
      const auto model = model_of(entry);
      std::shared_ptr<const sam::ImageEmbedding> emb = cache.find(entry.name + "|file|" + key);
      if (emb) {
        hits.fetch_add(1);
      } else {
        misses.fetch_add(1);
        emb = std::make_shared<const sam::ImageEmbedding>(model->encode(io::mat_view(rgb)));
        cache.put(entry.name + "|file|" + key, emb);
      }
      sam::SamPrompt p = prompt;
      if (p.mask_input.defined() && p.mask_input.size(-1) != model->config().low_res_size())
        fail(400, "the mask input does not fit model " + entry.name);
      return model->predict(*emb, p);
    };
    a.low_res_size = [this](const std::string& name) {
      return model_of(sam_entry_named(name))->config().low_res_size();
    };
    a.list = [this] {
      std::lock_guard<std::mutex> lock(registry_mutex);
      json list = json::array();
      for (const auto& e : entries)
        if (e->kind == "sam" || e->kind == "medsam" || e->kind == "dinov2")
          list.push_back({{"name", e->name}, {"kind", e->kind}, {"type", e->type}});
      return list;
    };
    a.backend = [this](const std::string& name, const std::string& role) {
      gbmseg::BackendSpec spec;
      if (name == "classical") {
        spec.kind = "classical";
        return spec;
      }
      ModelEntry& e = entry_named(name);
      const std::string wanted = role == "features" ? "dinov2" : "sam";
      if (e.kind != wanted)
        fail(400, "model " + e.name + " is " + e.kind + "; GBMSeg's " + role + " need a " + wanted +
                      " model or \"classical\" (the weight-free one)");
      spec.kind = wanted;
      spec.checkpoint = e.checkpoint;
      spec.model_type = e.model_type;
      spec.config_json = e.model_config;
      return spec;
    };
    return a;
  }

  // ---- weights ---------------------------------------------------------------------

  void list_weights(const httplib::Request& req, httplib::Response& res) {
    const std::string type = req.has_param("type") ? req.get_param_value("type") : "";
    if (!type.empty()) check_type(type);
    json list = json::array();
    std::lock_guard<std::mutex> lock(registry_mutex);
    for (const auto& e : entries)
      if (e->kind != "dinov2" && (type.empty() || e->type == type))
        list.push_back({{"type", e->type}, {"name", e->name}, {"url", e->url()}});
    send_json(res, 200, list);
  }

  void register_weights(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req.body);
    const std::string type = string_of(body, "type", "");
    const std::string name = string_of(body, "name", "");
    const std::string url = string_of(body, "url", "");
    if (type.empty() || name.empty() || url.empty()) fail(400, "fields \"type\", \"name\" and \"url\" are required");
    check_type(type);
    if (url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0)
      fail(400, "this server never downloads weights: download " + url + " yourself, put it in a folder and "
                "start the server with --models FOLDER (or give its path here)");
    if (options.models_dir.empty())
      fail(400, "this server was started without --models: it registers checkpoints only from that folder");
    std::string path = url.rfind("file://", 0) == 0 ? url.substr(7) : url;
    if (url.rfind("nephroseg:", 0) == 0) fail(400, url + " is already a model of this server");
    std::error_code ec;
    const fs::path file = fs::weakly_canonical(path, ec);
    const fs::path root = fs::weakly_canonical(options.models_dir, ec);
    const std::string rel = file.lexically_relative(root).string();
    if (rel.empty() || rel == "." || rel.rfind("..", 0) == 0 || fs::path(rel).is_absolute())
      fail(400, path + " is outside the --models folder; this server registers checkpoints only from there");
    if (!fs::is_regular_file(file)) fail(404, path + ": no such checkpoint file");
    if (!std::ifstream(file))
      fail(400, path + ": cannot be read");
    std::lock_guard<std::mutex> lock(registry_mutex);
    for (const auto& e : entries) {
      if (e->name == name)
        return send_text(res, "Model file with the name '" + name + "' already exists. Skip registration.");
      if (fs::weakly_canonical(e->checkpoint, ec) == file)
        return send_text(res, "Model file with the url '" + url + "' already exists. Skip registration.");
    }
    auto e = std::make_unique<ModelEntry>();
    e->name = name;
    e->type = type;
    e->checkpoint = file.string();
    e->model_type = type;
    e->precision = options.precision;
    if (file.filename() == "medsam_vit_b.pth") {
      e->kind = "medsam";
      e->model_type = "medsam";
    }
    entries.push_back(std::move(e));
    send_text(res, name + " (" + url + ") is registered.");
  }
};

Server::Server(ServeOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  const ServeOptions& o = impl_->options;
  o.validate();
  if (!o.weights_file.empty()) impl_->entries = read_weights_file(o.weights_file, o.precision);
  if (!o.models_dir.empty())
    for (auto& e : scan_models_dir(o.models_dir, o.precision)) {
      bool taken = false;
      for (const auto& other : impl_->entries) taken = taken || other->name == e->name;
      if (!taken) impl_->entries.push_back(std::move(e));
    }
  impl_->workbench = std::make_unique<Workbench>(impl_->options, impl_->model_access());
}

Server::~Server() { stop(); }

int Server::start() {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.state_mutex);
  NEPHRO_CHECK(!s.running && !s.stopped, "serve: the server was already started");
  const ServeOptions& o = s.options;
  s.http.new_task_queue = [n = o.http_threads] { return new httplib::ThreadPool(static_cast<size_t>(n)); };
  s.http.set_payload_max_length(static_cast<size_t>(o.max_body_mb * 1024.0 * 1024.0));
  s.http.set_pre_routing_handler([](const httplib::Request&, httplib::Response&) {
    t_request_start = std::chrono::steady_clock::now();
    return httplib::Server::HandlerResponse::Unhandled;
  });
  auto handler = [this](const httplib::Request& req, httplib::Response& res) { impl_->handle(req, res); };
  s.http.Get(".*", handler);
  s.http.Post(".*", handler);
  s.http.Put(".*", handler);
  s.http.Delete(".*", handler);
  s.http.Patch(".*", handler);
  s.http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request&,
                                                                        httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string detail = "bad request";
    if (res.status == 413) {
      char text[160];
      std::snprintf(text, sizeof text, "the request body is larger than this server's limit of %.1f MiB "
                    "(--max-body-mb)", impl_->options.max_body_mb);
      detail = text;
    } else if (res.status == 404) {
      detail = "no such route";
    } else if (res.status >= 500) {
      detail = "internal error";
    }
    send_json(res, res.status, {{"detail", detail}});
    return httplib::Server::HandlerResponse::Handled;
  }));
  if (o.log_requests)
    s.http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_request_start).count();
      char tail[64];
      std::snprintf(tail, sizeof tail, " %d %.0f ms", res.status, ms);
      log_info("serve: ", req.method, " ", impl_->redacted(req.path), tail, " (cache hits ", impl_->hits.load(), ")");
    });
  const int port = o.port == 0 ? s.http.bind_to_any_port(o.host) : (s.http.bind_to_port(o.host, o.port) ? o.port : -1);
  NEPHRO_CHECK(port > 0, "serve: cannot listen on ", o.host, ":", o.port,
               " (address in use, or not an address of this machine)");
  s.bound_port = port;
  s.running = true;
  s.thread = std::thread([this] { impl_->http.listen_after_bind(); });
  return port;
}

void Server::stop() {
  Impl& s = *impl_;
  std::unique_lock<std::mutex> lock(s.state_mutex);
  if (s.stopped) return;
  s.stopped = true;
  if (s.workbench) s.workbench->stop();  // GBMSeg jobs stop after their current target
  if (s.running) {
    s.http.stop();
    lock.unlock();
    if (s.thread.joinable()) s.thread.join();
    lock.lock();
    s.running = false;
  }
  s.stopped_cv.notify_all();
}

void Server::wait() {
  std::unique_lock<std::mutex> lock(impl_->state_mutex);
  impl_->stopped_cv.wait(lock, [this] { return impl_->stopped && !impl_->running; });
}

int Server::port() const { return impl_->bound_port; }
int64_t Server::cache_hits() const { return impl_->hits.load(); }
int64_t Server::cache_misses() const { return impl_->misses.load(); }
int64_t Server::reference_computations() const {
  std::lock_guard<std::mutex> lock(impl_->registry_mutex);
  int64_t n = 0;
  for (const auto& e : impl_->entries) n += e->reference_computations.load();
  return n;
}

std::string Server::entry_names() const {
  std::lock_guard<std::mutex> lock(impl_->registry_mutex);
  std::string s;
  for (const auto& e : impl_->entries) s += (s.empty() ? "" : ", ") + e->name + " (" + e->type + ")";
  return s;
}

}  // namespace nephroseg::serve
