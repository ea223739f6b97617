// `nephroseg bench serve`: the local HTTP server (serve/server.h) driven as QuPath's
// SAM extension drives it, beside the SAM library's own encoder and predict times
// measured in the same rounds of the same process, so that what the server adds
// (HTTP, base64, PNG decode, pixel digest, preprocessing, polygons, JSON) is visible.
//
// Steps: a random-weight SAM of the requested architecture is saved as an
// official-format .pth (state_dict_of + save_state_dict) in a temporary folder with
// a weights JSON naming it; the library model is loaded from that same file in the
// same precision the server loads it in; the server runs in-process on 127.0.0.1
// (any free port) and an httplib client posts samapi bodies. Each round uses a new
// synthetic view (so its first click misses the embedding cache), then three more
// clicks on it (cache hits); round 0 is an untimed warm-up that also loads the
// server's model. The library side of each round: image_encoder->forward on the
// view's preprocessed tensor and sam::decode (prompt encoder + decoder + postprocess
// to full size) for the same four points, as `bench sam` times them.
#include <httplib.h>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "bench_util.h"
#include "models/sam/internal.h"
#include "models/sam/predictor.h"
#include "nephroseg/bench/bench.h"
#include "nephroseg/checkpoint/pth.h"
#include "nephroseg/checkpoint/state_dict.h"
#include "nephroseg/core/error.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/tensor_mat.h"
#include "nephroseg/sam/automask.h"
#include "nephroseg/sam/sam.h"
#include "nephroseg/serve/server.h"
#include "serve/wire.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace nephroseg::bench {
namespace {

constexpr const char* kEntry = "bench";  // the weights entry's name
constexpr int kClicksPerView = 4;        // one new-view click, then cached clicks

/// A folder of its own under `parent` (or the system temp folder), removed with
/// everything in it when it goes out of scope, on every path.
class TempFolder {
 public:
  explicit TempFolder(const std::string& parent) {
    static std::atomic<int> counter{0};
    const fs::path base = parent.empty() ? fs::temp_directory_path() : fs::path(parent);
    NEPHRO_CHECK(fs::is_directory(base), "bench serve: --dir ", base.string(), " is not a folder");
    path_ = base / ("nephroseg-bench-serve-" + std::to_string(::getpid()) + "-" +
                    std::to_string(counter.fetch_add(1)));
    std::error_code ec;
    NEPHRO_CHECK(fs::create_directories(path_, ec) && !ec, "bench serve: cannot create the temporary folder ",
                 path_.string(), ec ? " (" + ec.message() + ")" : std::string(" (it exists already)"));
  }
  ~TempFolder() {
    std::error_code ec;
    fs::remove_all(path_, ec);  // best effort: a destructor must not throw
  }
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

void check_options(const ServeBenchOptions& o) {
  NEPHRO_CHECK(o.runs >= 1, "bench serve: --runs must be >= 1 (got ", o.runs, ")");
  NEPHRO_CHECK(o.image_size >= 32 && o.image_size <= 4096, "bench serve: --image-size must lie in [32, 4096] (got ",
               o.image_size, ")");
  NEPHRO_CHECK(o.points_per_side >= 0 && o.points_per_side <= sam::kMaxPointsPerSide,
               "bench serve: --points-per-side must lie in [0, ", sam::kMaxPointsPerSide, "] (0 skips automask; got ",
               o.points_per_side, ")");
}

sam::SamConfig config_of(const ServeBenchOptions& o) {
  return o.model_config.empty() ? sam::SamConfig::preset(o.model_type) : sam::SamConfig::from_json(o.model_config);
}

/// A deterministic tissue-like RGB view: smooth pink gradients, round "glomeruli"
/// with darker rims and small dark "nuclei", a lumen; `seed` changes every pixel.
cv::Mat synthetic_view(int size, int seed) {
  cv::Mat rgb(size, size, CV_8UC3);
  const double phase = 0.7 * seed;
  for (int y = 0; y < size; ++y) {
    auto* row = rgb.ptr<cv::Vec3b>(y);
    for (int x = 0; x < size; ++x) {
      const double u = double(x) / size, v = double(y) / size;
      const double wave = std::sin(6.0 * u + phase) * std::cos(5.0 * v - phase);
      row[x] = cv::Vec3b(cv::saturate_cast<uchar>(225 + 20 * wave - 30 * v),
                         cv::saturate_cast<uchar>(170 + 25 * wave + 20 * u),
                         cv::saturate_cast<uchar>(200 + 15 * wave + (seed % 7)));
    }
  }
  cv::RNG rng(static_cast<uint64_t>(1000 + seed));
  const double s = size / 1024.0;
  for (int k = 0; k < 6; ++k) {
    const cv::Point c(rng.uniform(size / 8, size - size / 8), rng.uniform(size / 8, size - size / 8));
    const int r = std::max(4, static_cast<int>(rng.uniform(60.0, 130.0) * s));
    cv::circle(rgb, c, r, cv::Scalar(180, 90, 150), cv::FILLED, cv::LINE_AA);
    cv::circle(rgb, c, r, cv::Scalar(120, 40, 110), std::max(1, static_cast<int>(6 * s)), cv::LINE_AA);
    for (int n = 0; n < 25; ++n) {
      const double a = rng.uniform(0.0, 2 * M_PI), d = rng.uniform(0.0, 0.85) * r;
      cv::circle(rgb, {c.x + int(d * std::cos(a)), c.y + int(d * std::sin(a))},
                 std::max(1, static_cast<int>(rng.uniform(4.0, 9.0) * s)), cv::Scalar(70, 30, 120), cv::FILLED,
                 cv::LINE_AA);
    }
  }
  const cv::Point lumen(rng.uniform(size / 4, 3 * size / 4), rng.uniform(size / 4, 3 * size / 4));
  cv::ellipse(rgb, lumen, cv::Size(std::max(3, int(90 * s)), std::max(2, int(40 * s))), 30.0 * seed, 0, 360,
              cv::Scalar(245, 235, 240), cv::FILLED, cv::LINE_AA);
  cv::GaussianBlur(rgb, rgb, cv::Size(3, 3), 0.8);
  return rgb;
}

/// The four click points of a view (x, y in view pixels).
std::array<std::array<float, 2>, kClicksPerView> click_points(int size) {
  const float s = static_cast<float>(size);
  return {{{s / 2, s / 3}, {s / 4, s / 4}, {3 * s / 4, s / 2}, {s / 3, 2 * s / 3}}};
}

/// Saves a random-weight model of `cfg` as an official-format checkpoint.
void write_random_checkpoint(const sam::SamConfig& cfg, const std::string& path) {
  const std::shared_ptr<sam::SamModel> model = sam::SamModel::random(cfg, 0, Precision::kFp32);
  checkpoint::save_state_dict(path, checkpoint::state_dict_of(sam::internal::module(*model)));
}

/// The server's weights JSON: one entry named kEntry for the checkpoint.
void write_weights_file(const ServeBenchOptions& o, const sam::SamConfig& cfg, const std::string& checkpoint,
                        const std::string& path) {
  const bool medsam = cfg.preprocess == sam::SamPreprocess::kMedSam;
  json entry = {{"name", kEntry},
                {"kind", medsam ? "medsam" : "sam"},
                {"type", "vit_b"},
                {"checkpoint", checkpoint},
                {"precision", precision_names().name(o.precision)}};
  if (!o.model_config.empty()) {
    entry["model_config"] = fs::absolute(o.model_config).string();
  } else {
    entry["model_type"] = o.model_type;
    if (!medsam) entry["type"] = o.model_type;
  }
  std::ofstream out(path);
  out << json::array({entry}).dump(2);
  out.close();
  NEPHRO_CHECK(out, "bench serve: cannot write the weights file ", path);
}

/// QuPath's side: JSON bodies to the server, one connection per request.
class SamClient {
 public:
  explicit SamClient(int port) : http_("127.0.0.1", port) {
    http_.set_read_timeout(3600, 0);  // automask on a full-size model takes minutes
    http_.set_write_timeout(600, 0);
  }
  /// Posts `body`; returns the seconds until the whole answer was received and the
  /// answer parsed into `answer`.
  double post(const std::string& path, const std::string& body, json& answer) {
    const auto t0 = Clock::now();
    const httplib::Result res = http_.Post(path, body, "application/json");
    const double seconds = since(t0);
    NEPHRO_CHECK(res, "bench serve: POST ", path, " got no answer (", httplib::to_string(res.error()), ")");
    answer = json::parse(res->body, nullptr, false);
    NEPHRO_CHECK(res->status == 200, "bench serve: POST ", path, " answered ", res->status, ": ",
                 answer.is_object() && answer.contains("detail") ? answer["detail"].dump() : res->body.substr(0, 200));
    NEPHRO_CHECK(answer.is_array(), "bench serve: POST ", path, " did not answer a list of Features");
    return seconds;
  }

 private:
  httplib::Client http_;
};

std::string click_body(const std::string& b64, const std::array<float, 2>& p) {
  return json{{"type", "vit_b"},
              {"checkpoint_url", std::string("nephroseg:") + kEntry},
              {"b64img", b64},
              {"point_coords", {{p[0], p[1]}}},
              {"point_labels", {1}},
              {"multimask_output", true}}
      .dump();
}

std::string automask_body(const std::string& b64, int points_per_side) {
  return json{{"type", "vit_b"},
              {"checkpoint_url", std::string("nephroseg:") + kEntry},
              {"b64img", b64},
              {"points_per_side", points_per_side}}
      .dump();
}

/// Per-round timings, each list one entry per timed round (or click).
struct Timings {
  std::vector<double> new_view, cached_click;   // server, over HTTP
  std::vector<double> encoder, predict;         // library, as bench sam
  std::vector<double> wire_decode, digest, preprocess, trace, dump;  // server steps, timed here
  std::vector<double> answer_bytes, vertices;   // size of one click's answer
};

/// The server-side steps outside the model, timed on this round's view: base64 +
/// PNG decode, pixel digest, resize + normalise, tracing `masks` into GeoJSON
/// geometries, and writing the answer's JSON text.
void time_server_steps(const std::string& b64, const cv::Mat& view, sam::SamImpl& net, const at::Tensor& masks,
                       Timings& t) {
  auto t0 = Clock::now();
  const cv::Mat rgb = serve::wire::decode_rgb(serve::wire::base64_decode(b64, "b64img"), "b64img");
  t.wire_decode.push_back(since(t0));
  t0 = Clock::now();
  const std::string digest = serve::wire::pixel_digest(rgb);
  t.digest.push_back(since(t0));
  t0 = Clock::now();
  sam::model_input(net, sam::resize_for_model(io::mat_view(view), net.config));
  t.preprocess.push_back(since(t0));
  t0 = Clock::now();
  // The server's own path: outlines traced and written straight to JSON text.
  std::vector<std::string> geometries(static_cast<size_t>(masks.size(0)));
  for (int64_t i = 0; i < masks.size(0); ++i)
    serve::wire::append_geometry(io::tensor_to_mat(masks[i]), &geometries[static_cast<size_t>(i)]);
  t.trace.push_back(since(t0));
  t0 = Clock::now();
  std::string text = "[";
  for (const auto& g : geometries) text += R"({"type":"Feature","geometry":)" + g + "},";
  text.back() = ']';
  t.dump.push_back(since(t0));
  t.answer_bytes.push_back(static_cast<double>(text.size()));
  double vertices = 0;
  for (const auto& f : json::parse(text)) {
    const json& g = f["geometry"];
    const json polygons = g["type"] == "Polygon" ? json::array({g["coordinates"]}) : g["coordinates"];
    for (const auto& polygon : polygons)
      for (const auto& ring : polygon) vertices += static_cast<double>(ring.size());
  }
  t.vertices.push_back(vertices);
}

/// One round: a new view clicked kClicksPerView times through the server, then the
/// library's encoder and predict on the same view and points.
void run_round(SamClient& client, sam::SamImpl& net, int size, int seed, bool timed, Timings& t) {
  const cv::Mat view = synthetic_view(size, seed);
  const std::string b64 = io::base64_encode(io::encode_png(view));
  const auto points = click_points(size);
  json answer;
  for (int k = 0; k < kClicksPerView; ++k) {
    const double s = client.post("/sam/", click_body(b64, points[k]), answer);
    if (timed) (k == 0 ? t.new_view : t.cached_click).push_back(s);
  }
  c10::InferenceMode guard;
  const at::Tensor x = sam::model_input(net, sam::resize_for_model(io::mat_view(view), net.config));
  auto t0 = Clock::now();
  const at::Tensor emb = net.image_encoder->forward(x).to(at::kFloat);
  if (timed) t.encoder.push_back(since(t0));
  const std::array<int64_t, 2> original{size, size};
  const std::array<int64_t, 2> input = sam::preprocess_shape(size, size, net.config.img_size);
  at::Tensor masks;
  for (int k = 0; k < kClicksPerView; ++k) {
    const at::Tensor coords = sam::apply_coords(at::tensor({points[k][0], points[k][1]}).view({1, 1, 2}), original,
                                                input, net.config);
    t0 = Clock::now();
    masks = sam::decode(net, emb, coords, at::ones({1, 1}, at::kInt), {}, {}, true, input, original).masks;
    if (timed) t.predict.push_back(since(t0));
  }
  if (timed) time_server_steps(b64, view, net, masks[0], t);
}

/// One decoder batch of the automatic mask generator: `b` single-point prompts
/// through decode, postprocessed to the view's size.
double decoder_batch_seconds(sam::SamImpl& net, const at::Tensor& emb, int size, int64_t b,
                             const sam::AutomaskOptions& a) {
  c10::InferenceMode guard;
  const std::array<int64_t, 2> original{size, size};
  const std::array<int64_t, 2> input = sam::preprocess_shape(size, size, net.config.img_size);
  const at::Tensor coords = at::rand({b, 1, 2}) * static_cast<float>(net.config.img_size);
  const at::Tensor labels = at::ones({b, 1}, at::kInt);
  const bool multimask = a.output_type != sam::AutomaskOutput::kSingleMask;
  return median(time_runs(1, 2, [&] { sam::decode(net, emb, coords, labels, {}, {}, multimask, input, original); }));
}

const char* verdict(bool met) { return met ? "met" : "NOT met"; }

/// "<= 1.15 x encoder + 0.100 s = 7.123 s: met"
std::string floor_text(double scale, const char* what, double offset, double library, double server) {
  const double bound = scale * library + offset;
  std::ostringstream s;
  s << std::fixed << std::setprecision(3) << "<= " << std::setprecision(2) << scale << " x " << what << " + "
    << std::setprecision(3) << offset << " s = " << bound << " s: " << verdict(server <= bound);
  return s.str();
}

void print_row(std::ostream& out, const std::string& what, double server, const std::string& library_what,
               double library, const std::string& floor) {
  out << std::left << std::setw(30) << what << std::right << std::setw(9) << server << "  " << std::left
      << std::setw(24) << library_what << std::right << std::setw(9) << library << "  " << std::setw(6)
      << std::setprecision(2) << server / library << std::setprecision(3) << "  " << floor << std::endl;
}

/// (c): one automask request on the last view (its embedding cached) against the
/// library's generate_masks on an embedding of the same view.
void run_automask(const ServeBenchOptions& o, SamClient& client, const sam::SamModel& model, std::ostream& out) {
  const int seed = static_cast<int>(o.runs);  // the last round's view: cached
  const cv::Mat view = synthetic_view(o.image_size, seed);
  const std::string b64 = io::base64_encode(io::encode_png(view));
  json answer;
  const double server_s = client.post("/sam/automask/", automask_body(b64, o.points_per_side), answer);
  sam::AutomaskOptions a;
  a.points_per_side = o.points_per_side;
  const sam::ImageEmbedding emb = model.encode(io::mat_view(view));
  const auto t0 = Clock::now();
  const std::vector<sam::AutoMask> masks = sam::generate_masks(model, io::mat_view(view), a, &emb);
  const double library_s = since(t0);
  const int64_t points = int64_t{o.points_per_side} * o.points_per_side;
  const int64_t batch = std::min<int64_t>(points, a.points_per_batch);
  const int64_t batches = (points + batch - 1) / batch;
  const double batch_s = decoder_batch_seconds(sam::internal::module(model), emb.embedding, o.image_size, batch, a);
  print_row(out, "automask pps " + std::to_string(o.points_per_side) + " (cached view)", server_s, "generate_masks",
            library_s, "(no floor; " + std::to_string(answer.size()) + " vs " + std::to_string(masks.size()) +
                           " masks)");
  out << "  automask decoder: " << batches << " batch(es) of " << batch << " points x " << batch_s
      << " s per batch (decode + postprocess to " << o.image_size << "^2, median of 2) = " << batches * batch_s
      << " s of the library's " << library_s << " s" << std::endl;
}

}  // namespace

int run_serve(const ServeBenchOptions& o, std::ostream& out) {
  check_options(o);
  const sam::SamConfig cfg = config_of(o);
  out << std::fixed << std::setprecision(3);
  out << "serve: SAM " << cfg.name << " (random weights, official-format .pth), precision "
      << precision_names().name(o.precision) << ", views " << o.image_size << "x" << o.image_size << " PNG, threads "
      << at::get_num_threads() << ", " << o.runs << " timed round(s) after 1 warm-up" << std::endl;

  TempFolder folder(o.dir);
  const std::string checkpoint = folder.file("sam_bench.pth");
  const std::string weights = folder.file("weights.json");
  write_random_checkpoint(cfg, checkpoint);
  write_weights_file(o, cfg, checkpoint, weights);
  const std::shared_ptr<sam::SamModel> model = sam::SamModel::load(checkpoint, cfg, o.precision);
  sam::SamImpl& net = sam::internal::module(*model);

  serve::ServeOptions so;
  so.port = 0;
  so.weights_file = weights;
  so.precision = o.precision;
  so.log_requests = false;
  so.max_automask_mp = std::max(so.max_automask_mp, double(o.image_size) * o.image_size / 1e6 + 0.01);
  serve::Server server(so);  // stopped by its destructor on every path
  const int port = server.start();
  SamClient client(port);

  Timings t;
  const auto t_warm = Clock::now();
  run_round(client, net, o.image_size, 0, /*timed=*/false, t);
  out << "warm-up round (server loads its model on the first request): " << since(t_warm) << " s" << std::endl;
  for (int64_t r = 1; r <= o.runs; ++r) run_round(client, net, o.image_size, static_cast<int>(r), true, t);
  NEPHRO_CHECK(server.cache_misses() == o.runs + 1 && server.cache_hits() == (o.runs + 1) * (kClicksPerView - 1),
               "bench serve: the server's embedding cache saw ", server.cache_misses(), " misses and ",
               server.cache_hits(), " hits; each round should miss once and hit ", kClicksPerView - 1, " times");

  const double enc = median(t.encoder), pred = median(t.predict);
  const double new_view = median(t.new_view), cached = median(t.cached_click);
  out << "medians: new-view clicks of " << t.new_view.size() << ", cached clicks of " << t.cached_click.size()
      << ", encoder of " << t.encoder.size() << ", predict of " << t.predict.size()
      << " (1 positive point, multimask, masks at full size)" << std::endl;
  out << std::left << std::setw(30) << "server figure" << std::right << std::setw(9) << "server_s" << "  "
      << std::left << std::setw(24) << "library figure" << std::right << std::setw(9) << "library_s" << "  "
      << std::setw(6) << "ratio" << "  floor" << std::endl;
  print_row(out, "(a) new-view click", new_view, "encoder forward", enc,
            floor_text(1.15, "encoder", 0.100, enc, new_view));
  print_row(out, "(b) cached-view click", cached, "predict", pred, floor_text(1.3, "predict", 0.030, pred, cached));
  out << "server steps outside the model, timed here (medians): base64 + PNG decode " << median(t.wire_decode)
      << " s, pixel digest " << median(t.digest) << " s, resize + normalise " << median(t.preprocess)
      << " s, masks -> GeoJSON geometries " << median(t.trace) << " s, JSON text " << median(t.dump)
      << " s (one multimask answer: " << std::setprecision(0) << median(t.vertices) << " vertices, "
      << std::setprecision(1) << median(t.answer_bytes) / 1e6 << " MB of JSON" << std::setprecision(3)
      << "; random-weight masks: a trained model's outlines may be simpler)" << std::endl;
  if (o.points_per_side > 0) run_automask(o, client, *model, out);
  server.stop();
  return 0;
}

}  // namespace nephroseg::bench
