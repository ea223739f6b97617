// The GlomSAM evaluation protocol (paper Tables 2-4): see nephroseg/workloads/glomsam_protocol.h.
#include "nephroseg/workloads/glomsam_protocol.h"

#include <ATen/ATen.h>
#include <unistd.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include "core/module_init.h"
#include "models/unet/unet.h"
#include "nephroseg/checkpoint/pth.h"
#include "nephroseg/checkpoint/state_dict.h"
#include "nephroseg/core/atomic_file.h"
#include "nephroseg/core/error.h"
#include "nephroseg/eval/report.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/tensor_mat.h"
#include "nephroseg/sam/sam.h"

namespace nephroseg::workloads {

// The model's own types (GlomSamModel, GlomSamConfig, box_from_mask, ...) are used
// throughout this file.
using namespace nephroseg::glomsam;
namespace fs = std::filesystem;

const EnumNames<ModelKind>& model_kind_names() {
  static const EnumNames<ModelKind> names("model kind", {{ModelKind::kGlomSam, "glomsam", {}},
                                                         {ModelKind::kMedSam, "medsam", {}},
                                                         {ModelKind::kSam, "sam", {}},
                                                         {ModelKind::kUNet, "unet", {}}});
  return names;
}

const std::vector<std::string>& protocol_metrics() {
  static const std::vector<std::string> names{"accuracy", "iou", "dice", "recall"};
  return names;
}

namespace {

bool valid_name(const std::string& s) {
  if (s.empty() || s == "." || s == "..") return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' || c == '+';
  });
}

void check_name(const std::string& name, const std::string& option, const std::string& text) {
  NEPHRO_CHECK(valid_name(name), option, " '", text, "': the name '", name,
               "' must be letters, digits, '_', '-', '.' or '+' (it names output files)");
}

}  // namespace

ProtocolModel parse_model_spec(const std::string& text, const std::string& option) {
  const size_t eq = text.find('=');
  NEPHRO_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < text.size(), option, " '", text,
               "': expected KIND[:LABEL]=CHECKPOINT with KIND one of ", model_kind_names().choices());
  std::string head = text.substr(0, eq);
  ProtocolModel m;
  m.checkpoint = text.substr(eq + 1);
  const size_t colon = head.find(':');
  if (colon != std::string::npos) {
    m.label = head.substr(colon + 1);
    head = head.substr(0, colon);
    check_name(m.label, option, text);
  }
  m.kind = model_kind_names().parse(head, option + " " + text);
  return m;
}

NamedFolder parse_named_folder(const std::string& text, const std::string& option) {
  const size_t eq = text.find('=');
  NEPHRO_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < text.size(), option, " '", text,
               "': expected NAME=DIR");
  NamedFolder f{text.substr(0, eq), text.substr(eq + 1)};
  check_name(f.name, option, text);
  return f;
}

InstanceCounts match_instances(const cv::Mat& pred, const cv::Mat& truth, double iou_threshold) {
  NEPHRO_CHECK(pred.size() == truth.size() && pred.type() == CV_8UC1 && truth.type() == CV_8UC1,
               "match_instances: expected two CV_8UC1 masks of one size");
  cv::Mat lp, lt;
  const int np = cv::connectedComponents(pred != 0, lp, 8, CV_32S) - 1;
  const int nt = cv::connectedComponents(truth != 0, lt, 8, CV_32S) - 1;
  InstanceCounts c;
  c.predicted = np;
  c.truth = nt;
  if (np == 0 || nt == 0) return c;
  // Areas and pairwise intersections in one pass (sparse: most pairs never touch).
  std::vector<int64_t> area_p(np + 1, 0), area_t(nt + 1, 0);
  std::map<std::pair<int, int>, int64_t> inter;
  for (int y = 0; y < lp.rows; ++y) {
    const int* a = lp.ptr<int>(y);
    const int* b = lt.ptr<int>(y);
    for (int x = 0; x < lp.cols; ++x) {
      ++area_p[a[x]];
      ++area_t[b[x]];
      if (a[x] > 0 && b[x] > 0) ++inter[{a[x], b[x]}];
    }
  }
  struct Pair {
    double iou;
    int p, t;
  };
  std::vector<Pair> pairs;
  for (const auto& [key, n] : inter) {
    const double iou =
        static_cast<double>(n) / static_cast<double>(area_p[key.first] + area_t[key.second] - n);
    if (iou >= iou_threshold) pairs.push_back({iou, key.first, key.second});
  }
  // Greedy by IoU (unique anyway when the threshold is >= 0.5).
  std::sort(pairs.begin(), pairs.end(), [](const Pair& x, const Pair& y) {
    return x.iou != y.iou ? x.iou > y.iou : (x.p != y.p ? x.p < y.p : x.t < y.t);
  });
  std::vector<char> used_p(np + 1, 0), used_t(nt + 1, 0);
  for (const auto& pr : pairs) {
    if (used_p[pr.p] || used_t[pr.t]) continue;
    used_p[pr.p] = used_t[pr.t] = 1;
    ++c.matched;
  }
  return c;
}

std::vector<Box> protocol_boxes(const cv::Mat& truth, int64_t jitter, uint64_t seed, const std::string& set,
                                const std::string& level, const std::string& image, bool per_instance) {
  NEPHRO_CHECK(truth.type() == CV_8UC1, "protocol_boxes: expected a CV_8UC1 mask");
  NEPHRO_CHECK(jitter >= 0, "box jitter must be >= 0, got ", jitter);
  // One generator per (seed, set, level, image): FNV-1a of the names mixed with the seed.
  uint64_t h = 1469598103934665603ull ^ seed;
  for (const std::string* s : {&set, &level, &image}) {
    for (unsigned char c : *s) h = (h ^ c) * 1099511628211ull;
    h = (h ^ 0x2f) * 1099511628211ull;
  }
  std::mt19937_64 rng(h);
  std::uniform_int_distribution<int64_t> draw(0, jitter);
  auto one = [&](const cv::Mat& m) {
    cv::Mat cont = m.isContinuous() ? m : m.clone();
    at::Tensor t = at::from_blob(cont.data, {cont.rows, cont.cols}, at::kByte);
    std::array<int64_t, 4> j{0, 0, 0, 0};
    for (auto& v : j) v = jitter > 0 ? draw(rng) : 0;  // x0, x1, y0, y1
    return box_from_mask(t, j);
  };
  std::vector<Box> boxes;
  if (!per_instance) {
    boxes.push_back(one(truth));
    return boxes;
  }
  cv::Mat labels;
  const int n = cv::connectedComponents(truth != 0, labels, 8, CV_32S) - 1;
  if (n == 0) boxes.push_back(one(truth));  // empty truth: the whole image
  for (int k = 1; k <= n; ++k) {
    cv::Mat comp = labels == k;
    boxes.push_back(one(comp));
  }
  return boxes;
}

namespace {

// ", bf16" / ", int8" for a model's note; nothing for fp32.
std::string precision_note(Precision p) {
  return p == Precision::kFp32 ? std::string() : ", " + precision_names().name(p);
}

std::string first_line(const std::string& s) {
  const size_t nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl) + " ...";
}

// Why a checkpoint does not fit a kind, in one line.
std::string bind_summary(const checkpoint::BindError& e) {
  std::ostringstream o;
  o << e.missing().size() << " missing key(s)";
  if (!e.missing().empty()) o << " (e.g. " << e.missing().front() << ")";
  o << ", " << e.unexpected().size() << " unexpected key(s)";
  if (!e.unexpected().empty()) o << " (e.g. " << e.unexpected().front() << ")";
  o << ", " << e.mismatched().size() << " shape mismatch(es)";
  if (!e.mismatched().empty()) o << " (e.g. " << e.mismatched().front().key << ")";
  return o.str();
}

// One loaded model of the comparison.
struct Loaded {
  ProtocolModel spec;
  std::string note;
  std::shared_ptr<GlomSamModel> glomsam;
  std::shared_ptr<sam::SamModel> sam;
  models::UNet unet{nullptr};
  int64_t unet_input = 512;
};

Loaded load_model(const ProtocolModel& spec) {
  const std::string what = "--model " + model_kind_names().name(spec.kind) +
                           (spec.label.empty() ? "" : ":" + spec.label) + "=" + spec.checkpoint;
  NEPHRO_CHECK(fs::is_regular_file(spec.checkpoint), what, ": the checkpoint does not exist");
  Loaded l;
  l.spec = spec;
  const std::string kind = model_kind_names().name(spec.kind);
  try {
    switch (spec.kind) {
      case ModelKind::kGlomSam: {
        const GlomSamConfig cfg = GlomSamModel::config_for(spec.checkpoint, spec.config);
        l.glomsam = GlomSamModel::load(spec.checkpoint, cfg, spec.precision);
        if (l.spec.label.empty())
          l.spec.label = cfg.is_full() ? "glomsam" : "glomsam-" + cfg.ablation_label();
        l.note = "GlomSAM " + cfg.ablation_label() + ", input " + std::to_string(cfg.sam.img_size) +
                 ", logit > " + io::format_number(cfg.mask_threshold) + precision_note(spec.precision);
        break;
      }
      case ModelKind::kSam:
      case ModelKind::kMedSam: {
        const bool medsam = spec.kind == ModelKind::kMedSam;
        sam::SamConfig cfg = sam::SamConfig::preset(medsam ? "medsam" : "vit_b");
        if (!spec.config.empty()) {
          const bool named = spec.config == "vit_b" || spec.config == "vit_l" || spec.config == "vit_h" ||
                             spec.config == "medsam";
          cfg = named ? sam::SamConfig::preset(spec.config) : sam::SamConfig::from_json(spec.config);
          cfg.preprocess = medsam ? sam::SamPreprocess::kMedSam : sam::SamPreprocess::kSam;
        }
        l.sam = sam::SamModel::load(spec.checkpoint, cfg, spec.precision);
        l.note = std::string(medsam ? "MedSAM" : "SAM") + " " + cfg.name + ", box prompts" +
                 precision_note(spec.precision);
        break;
      }
      case ModelKind::kUNet: {
        GlomSamConfig cfg =
            spec.config.empty() ? GlomSamConfig::official() : GlomSamConfig::preset(spec.config);
        models::UNetOptions u;
        u.features = cfg.unet_features;
        l.unet_input = cfg.unet_input_size();
        NEPHRO_CHECK(l.unet_input % u.size_divisor() == 0, "UNet input ", l.unet_input,
                     " is not divisible by ", u.size_divisor());
        {
          at::NoGradGuard no_grad;
          SkipInitGuard skip_init;
          GlobalRngGuard keep_rng;
          l.unet = models::UNet(u);
        }
        checkpoint::bind_state_dict(*l.unet, checkpoint::load_state_dict(spec.checkpoint), spec.checkpoint);
        l.unet->eval();
        l.note = "UNet (rough-mask generator alone), input " + std::to_string(l.unet_input) + ", no prompt";
        break;
      }
    }
  } catch (const checkpoint::BindError& e) {
    throw Error(
        detail::concat(what, ": not a ", kind, " checkpoint of this configuration: ", bind_summary(e)));
  } catch (const Error& e) {
    throw Error(detail::concat(what, ": ", first_line(e.what())));
  }
  if (l.spec.label.empty()) l.spec.label = kind;
  return l;
}

// [H, W, 3] uint8 RGB -> [1, 3, s, s] float in [0, 1] (uint8 * float32(1/255)).
at::Tensor to_input(const cv::Mat& rgb, int64_t side) {
  cv::Mat r;
  if (rgb.rows == side && rgb.cols == side) {
    r = rgb;
  } else {
    cv::resize(rgb, r, cv::Size(static_cast<int>(side), static_cast<int>(side)), 0, 0, cv::INTER_LINEAR);
  }
  return io::mat_to_tensor(r).permute({2, 0, 1}).unsqueeze(0).to(at::kFloat) * (1.0f / 255.0f);
}

// logits [s, s] -> CV_8U 0/255 mask of rows x cols: bilinear resize, then > threshold.
cv::Mat logits_to_mask(const at::Tensor& logits, int rows, int cols, double threshold) {
  at::Tensor lg = logits.contiguous();
  cv::Mat m(static_cast<int>(lg.size(0)), static_cast<int>(lg.size(1)), CV_32FC1, lg.data_ptr());
  cv::Mat up;
  if (m.rows == rows && m.cols == cols) {
    up = m.clone();
  } else {
    cv::resize(m, up, cv::Size(cols, rows), 0, 0, cv::INTER_LINEAR);
  }
  cv::Mat mask;
  cv::compare(up, threshold, mask, cv::CMP_GT);
  return mask;
}

// What every model needs of one image (computed once, shared by the levels).
struct ImageCache {
  std::map<size_t, sam::ImageEmbedding> embeddings;  // per SAM/MedSAM model
  std::map<size_t, cv::Mat> unet_masks;              // per UNet model
  at::Tensor rgb_tensor;
};

cv::Mat predict(const Loaded& m, size_t index, const cv::Mat& rgb, const std::vector<Box>& boxes,
                ImageCache& cache) {
  at::NoGradGuard no_grad;
  const int H = rgb.rows, W = rgb.cols;
  switch (m.spec.kind) {
    case ModelKind::kGlomSam: {
      const auto& cfg = m.glomsam->config();
      const int64_t S = cfg.sam.img_size;
      const at::Tensor img = to_input(rgb, S);
      const float sx = static_cast<float>(S) / static_cast<float>(W);
      const float sy = static_cast<float>(S) / static_cast<float>(H);
      cv::Mat out = cv::Mat::zeros(H, W, CV_8UC1);
      for (const Box& b : boxes) {
        const at::Tensor bt =
            at::tensor(std::vector<float>{b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy}).view({1, 4});
        const at::Tensor logits = m.glomsam->forward(img, bt)[0][0];  // [S, S]
        out |= logits_to_mask(logits, H, W, cfg.mask_threshold);
      }
      return out;
    }
    case ModelKind::kSam:
    case ModelKind::kMedSam: {
      if (!cache.rgb_tensor.defined()) cache.rgb_tensor = io::mat_to_tensor(rgb);
      auto it = cache.embeddings.find(index);
      if (it == cache.embeddings.end())
        it = cache.embeddings.emplace(index, m.sam->encode(cache.rgb_tensor)).first;
      std::vector<float> flat;
      for (const Box& b : boxes) flat.insert(flat.end(), b.begin(), b.end());
      const at::Tensor bt = at::tensor(flat).view({static_cast<int64_t>(boxes.size()), 4});
      const sam::SamResult r = m.sam->predict_boxes(it->second, bt, /*multimask=*/false);
      // masks [K, 1, H, W] bool -> union
      const at::Tensor any = r.masks.select(1, 0).any(0).to(at::kByte).mul(255).contiguous();
      return io::tensor_to_mat(any).clone();
    }
    case ModelKind::kUNet: {
      auto it = cache.unet_masks.find(index);
      if (it != cache.unet_masks.end()) return it->second;
      const at::Tensor logits = m.unet.ptr()->forward(to_input(rgb, m.unet_input))[0][0];
      cv::Mat mask = logits_to_mask(logits, H, W, /*threshold=*/0.0);
      cache.unet_masks.emplace(index, mask);
      return mask;
    }
  }
  throw Error("internal: unknown model kind");
}

nlohmann::json jnum(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }
double ratio(int64_t a, int64_t b) {
  return b > 0 ? static_cast<double>(a) / static_cast<double>(b) : std::nan("");
}

std::string truth_folder(const NamedFolder& level, const std::string& set) {
  const fs::path sub = fs::path(level.dir) / set;
  return fs::is_directory(sub) ? sub.string() : level.dir;
}

struct SetPlan {
  std::vector<std::string> images;                    // paths, sorted
  std::vector<std::vector<std::string>> truth_paths;  // [level][image]
};

std::string pct(const eval::SummaryStats& s) {
  if (s.n == 0) return "n/a";
  char buf[64];
  if (s.n > 1) {
    std::snprintf(buf, sizeof buf, "%.2f &plusmn; %.2f", 100.0 * s.mean, 100.0 * s.sd);
  } else {
    std::snprintf(buf, sizeof buf, "%.2f", 100.0 * s.mean);
  }
  return buf;
}

std::string pct1(double v) {
  if (!std::isfinite(v)) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", 100.0 * v);
  return buf;
}

std::string plot_name(const std::string& set, const std::string& level, const std::string& metric) {
  return "boxplot_" + set + "_" + level + "_" + metric + ".png";
}

// One box per model, side by side, each under its model's name.
cv::Mat draw_models_box_plot(const ProtocolRun& run, const std::string& set, const std::string& level,
                             const std::string& metric) {
  std::vector<cv::Mat> panels;
  for (const auto& model : run.models) {
    std::vector<double> v;
    for (const auto& r : run.records)
      if (r.set == set && r.level == level && r.model == model)
        v.push_back(eval::metric_value(r.metrics, metric));
    cv::Mat plot = eval::draw_box_plot(v, metric);
    cv::Mat band(30, plot.cols, CV_8UC3, cv::Scalar(255, 255, 255));
    cv::putText(band, model + "  (" + set + ", " + level + ")", cv::Point(70, 21), cv::FONT_HERSHEY_SIMPLEX,
                0.55, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
    cv::Mat col;
    cv::vconcat(band, plot, col);
    panels.push_back(col);
  }
  cv::Mat all;
  cv::hconcat(panels, all);
  return all;
}

}  // namespace

std::string render_protocol_html(const ProtocolRun& run, const ProtocolOptions& o) {
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" << io::html_escape(o.title)
    << "</title>\n<style>body{font-family:sans-serif;margin:20px;color:#222}table{border-collapse:collapse;"
       "margin:8px 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}th{background:#eef}"
       "td.name{text-align:left}.card{border:1px solid #ccc;border-radius:6px;padding:10px;margin:12px 0}"
       ".plots img{margin:4px;border:1px solid #ddd}.best{font-weight:bold}</style></head><body>\n";
  h << "<h1>" << io::html_escape(o.title) << "</h1>\n";
  size_t images = 0;
  std::set<std::string> seen;
  for (const auto& r : run.records)
    if (seen.insert(r.set + "/" + r.image).second) ++images;
  h << "<p id=\"counts\">" << images << " images in " << run.sets.size() << " set(s), " << run.levels.size()
    << " annotator level(s), " << run.models.size() << " model(s). Boxes: "
    << (o.per_instance ? "one per truth component" : "bounding box of all truth foreground") << ", jitter 0-"
    << o.jitter << " px per side (seed " << o.seed << "), from each level's own truth.</p>\n";
  h << "<h2>Models</h2>\n<table id=\"models\"><tr><th>model</th><th>kind</th><th>details</th></tr>\n";
  for (size_t i = 0; i < run.models.size(); ++i)
    h << "<tr><td class=\"name\">" << io::html_escape(run.models[i]) << "</td><td class=\"name\">"
      << model_kind_names().name(run.kinds[i]) << "</td><td class=\"name\">"
      << io::html_escape(run.model_notes[i]) << "</td></tr>\n";
  h << "</table>\n";
  auto group = [&](const std::string& s, const std::string& l, const std::string& m) -> const ProtocolGroup* {
    for (const auto& g : run.groups)
      if (g.set == s && g.level == l && g.model == m) return &g;
    return nullptr;
  };
  const std::vector<std::string> heads{"PA", "IoU", "Dice", "Recall"};
  for (const auto& set : run.sets) {
    h << "<h2>Set " << io::html_escape(set) << ": mean &plusmn; SD over images, %</h2>\n";
    h << "<table class=\"paper\" id=\"table-" << io::html_escape(set)
      << "\"><tr><th rowspan=\"2\">model</th>";
    for (const auto& level : run.levels) h << "<th colspan=\"4\">" << io::html_escape(level) << "</th>";
    h << "</tr><tr>";
    for (size_t l = 0; l < run.levels.size(); ++l)
      for (const auto& hd : heads) h << "<th>" << hd << "</th>";
    h << "</tr>\n";
    for (const auto& model : run.models) {
      h << "<tr><td class=\"name\">" << io::html_escape(model) << "</td>";
      for (const auto& level : run.levels) {
        const ProtocolGroup* g = group(set, level, model);
        for (const auto& m : protocol_metrics()) {
          // Bold: the best mean of this column.
          double best = -1;
          for (const auto& other : run.models) {
            const ProtocolGroup* og = group(set, level, other);
            if (og && og->summary.at(m).n > 0) best = std::max(best, og->summary.at(m).mean);
          }
          const auto& s = g->summary.at(m);
          h << "<td" << (s.n > 0 && s.mean == best ? " class=\"best\"" : "") << ">" << pct(s) << "</td>";
        }
      }
      h << "</tr>\n";
    }
    h << "</table>\n";
    h << "<h3>Instances (IoU &ge; " << io::format_number(o.instance_iou) << "), " << io::html_escape(set)
      << "</h3>\n";
    h << "<table class=\"instances\" id=\"instances-" << io::html_escape(set)
      << "\"><tr><th rowspan=\"2\">model</th>";
    for (const auto& level : run.levels) h << "<th colspan=\"4\">" << io::html_escape(level) << "</th>";
    h << "</tr><tr>";
    for (size_t l = 0; l < run.levels.size(); ++l)
      h << "<th>truth</th><th>matched</th><th>precision %</th><th>recall %</th>";
    h << "</tr>\n";
    for (const auto& model : run.models) {
      h << "<tr><td class=\"name\">" << io::html_escape(model) << "</td>";
      for (const auto& level : run.levels) {
        const ProtocolGroup* g = group(set, level, model);
        h << "<td>" << g->truth_instances << "</td><td>" << g->matched_instances << "</td><td>"
          << pct1(g->instance_precision) << "</td><td>" << pct1(g->instance_recall) << "</td>";
      }
      h << "</tr>\n";
    }
    h << "</table>\n";
    h << "<div class=\"plots\">";
    for (const auto& level : run.levels)
      for (const auto& m : protocol_metrics())
        h << "<img alt=\"box plot " << io::html_escape(set + " " + level + " " + m) << "\" width=\""
          << 280 * run.models.size() << "\" src=\""
          << io::png_data_uri(draw_models_box_plot(run, set, level, m)) << "\">";
    h << "</div>\n";
  }
  h << "<p>Pixel accuracy, IoU, Dice and recall per image (nephroseg eval metrics; empty truth and empty "
       "prediction count as 1), then mean and sample SD over the images of a set. The paper averages over "
       "batches of two; see docs/glomsam.md for what can be compared.</p>\n";
  h << "<h2>Images</h2>\n<table id=\"images\"><tr><th>set</th><th>level</th><th>model</th><th>image</th>"
       "<th>PA</th><th>IoU</th><th>Dice</th><th>Recall</th><th>instances (truth / pred / "
       "matched)</th></tr>\n";
  for (const auto& r : run.records) {
    h << "<tr><td class=\"name\">" << io::html_escape(r.set) << "</td><td class=\"name\">"
      << io::html_escape(r.level) << "</td><td class=\"name\">" << io::html_escape(r.model)
      << "</td><td class=\"name\">" << io::html_escape(r.image) << "</td>";
    for (const auto& m : protocol_metrics())
      h << "<td>" << io::format_fixed(eval::metric_value(r.metrics, m), 4) << "</td>";
    h << "<td>" << r.truth_instances << " / " << r.pred_instances << " / " << r.matched_instances
      << "</td></tr>\n";
  }
  h << "</table>\n</body></html>\n";
  return h.str();
}

namespace {

// Step 1a: the options themselves (names, ranges), before any file is read.
void check_protocol_options(const ProtocolOptions& o) {
  NEPHRO_CHECK(!o.out_dir.empty(), "glomsam eval: an output folder is required");
  NEPHRO_CHECK(!o.sets.empty(), "glomsam eval: no image set (--set NAME=DIR or --images DIR)");
  NEPHRO_CHECK(!o.truths.empty(), "glomsam eval: no truth folder (--truth LEVEL=DIR)");
  NEPHRO_CHECK(!o.models.empty(), "glomsam eval: no model (--model KIND=CHECKPOINT)");
  NEPHRO_CHECK(o.jitter >= 0, "--jitter must be >= 0, got ", o.jitter);
  NEPHRO_CHECK(o.instance_iou > 0 && o.instance_iou <= 1, "--instance-iou must be in (0, 1], got ",
               o.instance_iou);
  std::set<std::string> names;
  for (const auto& s : o.sets) {
    check_name(s.name, "--set", s.name + "=" + s.dir);
    NEPHRO_CHECK(names.insert(s.name).second, "--set: the name '", s.name, "' is given twice");
  }
  names.clear();
  for (const auto& t : o.truths) {
    check_name(t.name, "--truth", t.name + "=" + t.dir);
    NEPHRO_CHECK(names.insert(t.name).second, "--truth: the level '", t.name, "' is given twice");
    NEPHRO_CHECK(fs::is_directory(t.dir), "--truth ", t.name, "=", t.dir, ": not a folder");
  }
}

// Step 1b: a set's images (sorted, unique stems) and each level's mask for each image.
SetPlan plan_set(const ProtocolOptions& o, const NamedFolder& s) {
  NEPHRO_CHECK(fs::is_directory(s.dir), "--set ", s.name, "=", s.dir, ": not a folder");
  SetPlan p;
  p.images = io::list_image_files(s.dir);
  NEPHRO_CHECK(!p.images.empty(), "--set ", s.name, "=", s.dir, ": holds no images");
  std::sort(p.images.begin(), p.images.end());
  std::set<std::string> stems;
  for (const auto& img : p.images)
    NEPHRO_CHECK(stems.insert(io::file_stem(img)).second, "--set ", s.name, ": two images named '",
                 io::file_stem(img), "'");
  for (const auto& t : o.truths) {
    const std::string dir = truth_folder(t, s.name);
    std::map<std::string, std::string> by_stem;
    for (const auto& f : io::list_image_files(dir)) by_stem.emplace(io::file_stem(f), f);
    std::vector<std::string> paths, missing;
    for (const auto& img : p.images) {
      auto it = by_stem.find(io::file_stem(img));
      if (it == by_stem.end()) {
        missing.push_back(fs::path(img).filename().string());
      } else {
        paths.push_back(it->second);
      }
    }
    if (!missing.empty()) {
      std::string list;
      for (size_t i = 0; i < missing.size() && i < 5; ++i) list += (i ? ", " : "") + missing[i];
      if (missing.size() > 5) list += ", ...";
      throw Error(detail::concat("--truth ", t.name, "=", t.dir, ": no mask for ", missing.size(), " of the ",
                                 p.images.size(), " images of set '", s.name, "' in ", dir, " (", list, ")"));
    }
    p.truth_paths.push_back(paths);
  }
  return p;
}

// Step 1c: every model loaded (before anything is written), with unique labels.
std::vector<Loaded> load_models(const ProtocolOptions& o, ProtocolRun& run) {
  std::vector<Loaded> models;
  std::set<std::string> names;
  for (const auto& spec : o.models) {
    models.push_back(load_model(spec));
    const std::string& label = models.back().spec.label;
    NEPHRO_CHECK(names.insert(label).second, "--model: two models are named '", label,
                 "'; name them with --model KIND:LABEL=CHECKPOINT");
    run.models.push_back(label);
    run.kinds.push_back(spec.kind);
    run.model_notes.push_back(models.back().note);
  }
  return models;
}

// Step 2: every (set, image, level, model): predict, score, and stage the mask.
void predict_and_score(const ProtocolOptions& o, const std::vector<SetPlan>& plans,
                       const std::vector<Loaded>& models, const fs::path& staging, ProtocolRun& run) {
  for (size_t si = 0; si < o.sets.size(); ++si) {
    const std::string& set = o.sets[si].name;
    const SetPlan& plan = plans[si];
    for (size_t ii = 0; ii < plan.images.size(); ++ii) {
      const std::string& path = plan.images[ii];
      const std::string stem = io::file_stem(path);
      if (o.on_image) o.on_image(set, stem, ii, plan.images.size());
      const cv::Mat rgb = io::read_image_rgb(path);
      ImageCache cache;
      for (size_t li = 0; li < o.truths.size(); ++li) {
        const std::string& level = o.truths[li].name;
        const std::string& tpath = plan.truth_paths[li][ii];
        const cv::Mat truth = io::read_mask(tpath, o.truth_mask);
        NEPHRO_CHECK(truth.rows == rgb.rows && truth.cols == rgb.cols, "--truth ", level, ": ", tpath, " is ",
                     truth.cols, "x", truth.rows, " but its image ", path, " is ", rgb.cols, "x", rgb.rows);
        const std::vector<Box> boxes =
            protocol_boxes(truth, o.jitter, o.seed, set, level, stem, o.per_instance);
        for (size_t mi = 0; mi < models.size(); ++mi) {
          const Loaded& m = models[mi];
          const cv::Mat pred = predict(m, mi, rgb, boxes, cache);
          ProtocolRecord r;
          r.set = set;
          r.level = level;
          r.model = m.spec.label;
          r.kind = m.spec.kind;
          r.image = stem;
          r.metrics = eval::compute_metrics(pred, truth);
          if (m.spec.kind != ModelKind::kUNet) r.boxes = boxes;
          const InstanceCounts ic = match_instances(pred, truth, o.instance_iou);
          r.truth_instances = ic.truth;
          r.pred_instances = ic.predicted;
          r.matched_instances = ic.matched;
          const fs::path rel = fs::path("masks") / r.model / set / level / (stem + ".png");
          r.mask_path = rel.string();
          const fs::path dst = staging / r.model / set / level / (stem + ".png");
          fs::create_directories(dst.parent_path());
          io::write_mask_png(dst.string(), pred);
          run.records.push_back(std::move(r));
        }
      }
    }
  }
}

// Step 3: the summaries of each (set, level, model).
void summarize_groups(ProtocolRun& run) {
  for (const auto& set : run.sets)
    for (const auto& level : run.levels)
      for (const auto& model : run.models) {
        ProtocolGroup g;
        g.set = set;
        g.level = level;
        g.model = model;
        std::map<std::string, std::vector<double>> values;
        for (const auto& r : run.records) {
          if (r.set != set || r.level != level || r.model != model) continue;
          for (const auto& m : protocol_metrics()) values[m].push_back(eval::metric_value(r.metrics, m));
          g.truth_instances += r.truth_instances;
          g.pred_instances += r.pred_instances;
          g.matched_instances += r.matched_instances;
        }
        for (const auto& m : protocol_metrics()) g.summary[m] = eval::summarize(values[m]);
        g.instance_precision = ratio(g.matched_instances, g.pred_instances);
        g.instance_recall = ratio(g.matched_instances, g.truth_instances);
        run.groups.push_back(std::move(g));
      }
}

// Step 4a: per_image.csv rows and summary.json's "images".
void image_rows(const ProtocolRun& run, std::vector<io::CsvRow>& rows, nlohmann::json& records) {
  for (const auto& r : run.records) {
    io::CsvRow row{r.set, r.level, r.model, model_kind_names().name(r.kind), r.image};
    nlohmann::json j = {{"set", r.set},
                        {"level", r.level},
                        {"model", r.model},
                        {"kind", model_kind_names().name(r.kind)},
                        {"image", r.image}};
    for (const auto& m : protocol_metrics()) {
      row.push_back(io::format_number(eval::metric_value(r.metrics, m)));
      j[m] = jnum(eval::metric_value(r.metrics, m));
    }
    std::string boxes;
    nlohmann::json jb = nlohmann::json::array();
    for (const Box& b : r.boxes) {
      if (!boxes.empty()) boxes += ";";
      boxes += io::format_number(b[0]) + " " + io::format_number(b[1]) + " " + io::format_number(b[2]) + " " +
               io::format_number(b[3]);
      jb.push_back({b[0], b[1], b[2], b[3]});
    }
    row.insert(row.end(), {boxes, std::to_string(r.truth_instances), std::to_string(r.pred_instances),
                           std::to_string(r.matched_instances), r.mask_path});
    j["boxes"] = jb;
    j["truth_instances"] = r.truth_instances;
    j["pred_instances"] = r.pred_instances;
    j["matched_instances"] = r.matched_instances;
    j["tp"] = r.metrics.tp;
    j["fp"] = r.metrics.fp;
    j["fn"] = r.metrics.fn;
    j["tn"] = r.metrics.tn;
    j["mask"] = r.mask_path;
    rows.push_back(std::move(row));
    records.push_back(std::move(j));
  }
}

// Step 4b: summary.csv and instances.csv rows and summary.json's "groups".
void group_rows(const ProtocolOptions& o, const ProtocolRun& run, std::vector<io::CsvRow>& sum_rows,
                std::vector<io::CsvRow>& inst_rows, nlohmann::json& groups) {
  for (const auto& g : run.groups) {
    nlohmann::json j = {{"set", g.set}, {"level", g.level}, {"model", g.model}};
    for (const auto& m : protocol_metrics()) {
      const auto& s = g.summary.at(m);
      sum_rows.push_back({g.set, g.level, g.model, m, std::to_string(s.n), io::format_number(s.mean),
                          io::format_number(s.sd), io::format_number(s.median), io::format_number(s.q25),
                          io::format_number(s.q75), io::format_number(s.min), io::format_number(s.max)});
      j[m] = {{"n", s.n},           {"mean", jnum(s.mean)}, {"sd", jnum(s.sd)},   {"median", jnum(s.median)},
              {"q25", jnum(s.q25)}, {"q75", jnum(s.q75)},   {"min", jnum(s.min)}, {"max", jnum(s.max)}};
    }
    inst_rows.push_back({g.set, g.level, g.model, std::to_string(g.truth_instances),
                         std::to_string(g.pred_instances), std::to_string(g.matched_instances),
                         io::format_number(g.instance_precision), io::format_number(g.instance_recall)});
    j["instances"] = {{"truth", g.truth_instances},        {"predicted", g.pred_instances},
                      {"matched", g.matched_instances},    {"precision", jnum(g.instance_precision)},
                      {"recall", jnum(g.instance_recall)}, {"iou_threshold", o.instance_iou}};
    groups.push_back(std::move(j));
  }
}

// Step 4c: summary.json.
nlohmann::json summary_document(const ProtocolOptions& o, const ProtocolRun& run,
                                const std::vector<Loaded>& models, const nlohmann::json& jrecords,
                                const nlohmann::json& jgroups) {
  nlohmann::json jmodels = nlohmann::json::array();
  for (size_t i = 0; i < models.size(); ++i)
    jmodels.push_back({{"label", run.models[i]},
                       {"kind", model_kind_names().name(run.kinds[i])},
                       {"checkpoint", models[i].spec.checkpoint},
                       {"config", models[i].spec.config},
                       {"details", run.model_notes[i]}});
  nlohmann::json jsets = nlohmann::json::array(), jtruths = nlohmann::json::array();
  for (const auto& s : o.sets) jsets.push_back({{"name", s.name}, {"dir", s.dir}});
  for (const auto& t : o.truths) jtruths.push_back({{"name", t.name}, {"dir", t.dir}});
  return {{"title", o.title},
          {"protocol",
           {{"sets", jsets},
            {"truths", jtruths},
            {"jitter", o.jitter},
            {"seed", o.seed},
            {"per_instance", o.per_instance},
            {"instance_iou", o.instance_iou},
            {"metrics", protocol_metrics()},
            {"averaging", "per-image values; mean and sample SD over the images of a (set, level, model)"}}},
          {"models", jmodels},
          {"groups", jgroups},
          {"images", jrecords}};
}

}  // namespace

ProtocolRun evaluate_protocol(const ProtocolOptions& o) {
  // 1. Check every input and load every model before anything is written.
  check_protocol_options(o);
  std::vector<SetPlan> plans;
  for (const auto& s : o.sets) plans.push_back(plan_set(o, s));
  ProtocolRun run;
  const std::vector<Loaded> models = load_models(o, run);
  for (const auto& s : o.sets) run.sets.push_back(s.name);
  for (const auto& t : o.truths) run.levels.push_back(t.name);

  // 2. Predict and score; masks go to a staging folder renamed into place at the end.
  fs::create_directories(o.out_dir);
  remove_stale_temporaries(o.out_dir);
  const fs::path staging = fs::path(o.out_dir) / (".tmp-" + std::to_string(::getpid()) + "-masks");
  const fs::path final_masks = fs::path(o.out_dir) / "masks";
  fs::remove_all(staging);
  try {
    predict_and_score(o, plans, models, staging, run);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(staging, ec);
    throw;
  }
  // 3. Summaries.
  summarize_groups(run);

  // 4. Report files (contents first, then atomic writes), then the masks folder.
  auto out = [&](const std::string& f) { return (fs::path(o.out_dir) / f).string(); };
  try {
    io::CsvRow per_header{"set", "level", "model", "kind", "image"};
    for (const auto& m : protocol_metrics()) per_header.push_back(m);
    for (const char* c : {"boxes", "truth_instances", "pred_instances", "matched_instances", "mask"})
      per_header.push_back(c);
    std::vector<io::CsvRow> per_rows, sum_rows, inst_rows;
    nlohmann::json jrecords = nlohmann::json::array(), jgroups = nlohmann::json::array();
    image_rows(run, per_rows, jrecords);
    group_rows(o, run, sum_rows, inst_rows, jgroups);
    const nlohmann::json doc = summary_document(o, run, models, jrecords, jgroups);
    const std::string html = render_protocol_html(run, o);
    std::vector<std::pair<std::string, cv::Mat>> plots;
    for (const auto& set : run.sets)
      for (const auto& level : run.levels)
        for (const auto& m : protocol_metrics())
          plots.emplace_back(plot_name(set, level, m), draw_models_box_plot(run, set, level, m));

    io::write_csv(out("per_image.csv"), per_header, per_rows);
    io::write_csv(
        out("summary.csv"),
        {"set", "level", "model", "metric", "n", "mean", "sd", "median", "q25", "q75", "min", "max"},
        sum_rows);
    io::write_csv(out("instances.csv"),
                  {"set", "level", "model", "truth", "predicted", "matched", "precision", "recall"},
                  inst_rows);
    write_file_atomically(out("summary.json"), doc.dump(2) + "\n");
    for (const auto& [name, img] : plots) io::write_png(out(name), img);
    write_file_atomically(out("report.html"), html);
    run.files = {"per_image.csv", "summary.csv", "instances.csv", "summary.json", "report.html"};
    for (const auto& p : plots) run.files.push_back(p.first);
    // The masks folder last: an old one is replaced whole.
    fs::remove_all(final_masks);
    fs::rename(staging, final_masks);
    run.files.push_back("masks/");
  } catch (...) {
    std::error_code ec;
    fs::remove_all(staging, ec);
    throw;
  }
  return run;
}

}  // namespace nephroseg::workloads
