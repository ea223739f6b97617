// `nephroseg gbmseg`: one-shot GBM segmentation (GBMSeg) of a target image or folder from
// one reference image + mask. Per target: <name>.png (mask), <name>.prompts.json (every
// prompt stage, the parameters, the backends), <name>.overlay.png; per run: summary.csv
// and run.json. Reference features are computed once; existing outputs are skipped
// unless --overwrite; a failing target is reported and the batch goes on (exit 1 if any
// target failed).
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "command.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/eval/metrics.h"
#include "nephroseg/gbmseg/dice.h"
#include "nephroseg/gbmseg/model_backends.h"
#include "nephroseg/gbmseg/pipeline.h"
#include "nephroseg/gbmseg/prompts_json.h"
#include "nephroseg/core/atomic_file.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/io/overlay.h"

namespace fs = std::filesystem;

namespace nephroseg::cli {
namespace {

using gbmseg::PromptOptions;
using Clock = std::chrono::steady_clock;

struct GbmSegParams {
  // Backends.
  std::string features = "dinov2";
  std::string segmenter = "sam";
  std::string dinov2;
  std::string dinov2_type = "vitg14";
  std::string dinov2_config;
  std::string sam;
  std::string sam_type = "vit_l";
  std::string sam_config;
  // Data.
  std::string reference_image;
  std::string reference_mask;
  std::string target;
  std::string ground_truth;
  std::string out;
  // Prompt engineering.
  std::string preset = "authors-code";
  std::string ablation;
  int size = 560;
  std::string patch_rule = "all-nonzero";
  int patch_threshold = 128;
  bool include_last_row_col = false;
  std::string hard = "off";
  std::string order = "raster";
  std::string ape_order = "head";
  std::string d_sp_pos, d_sp_neg, d_ex, d_sp_hard;
  bool scale_fallbacks = false;
  // Output.
  std::string mask_resize = "nearest";
  bool keep_working_size = false;
  bool largest_contour = false;
  bool overwrite = false;
};

// "0.125" = fraction of S, "70px" = absolute pixels.
gbmseg::Radius parse_radius(const std::string& text, const char* flag) {
  std::string t = text;
  bool pixels = false;
  if (t.size() > 2 && t.compare(t.size() - 2, 2, "px") == 0) {
    pixels = true;
    t = t.substr(0, t.size() - 2);
  }
  double v = 0.0;
  size_t used = 0;
  try {
    v = std::stod(t, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  NEPHRO_CHECK(used == t.size() && !t.empty() && std::isfinite(v) && v >= 0, flag, " '", text,
               "' is not a radius (a fraction of the working size such as 0.125, or pixels "
               "such as 70px)");
  return pixels ? gbmseg::Radius::absolute(v) : gbmseg::Radius::of_size(v);
}

gbmseg::AblationRow parse_ablation(const std::string& s) {
  if (s == "forward") return gbmseg::AblationRow::kForwardOnly;
  if (s == "backward") return gbmseg::AblationRow::kBackward;
  if (s == "exclusive") return gbmseg::AblationRow::kExclusive;
  if (s == "sparse") return gbmseg::AblationRow::kSparse;
  if (s == "hard") return gbmseg::AblationRow::kHard;
  NEPHRO_FAIL("--ablation '", s, "': expected forward|backward|exclusive|sparse|hard");
}

// Options given on the command line (count() > 0) override the preset.
struct Overrides {
  CLI::Option *size, *patch_rule, *patch_threshold, *last, *hard, *order, *ape_order, *d_sp_pos,
      *d_sp_neg, *d_ex, *d_sp_hard, *scale_fallbacks, *preset;
};

PromptOptions build_prompt_options(const GbmSegParams& p, const Overrides& o) {
  PromptOptions opt;
  if (!p.ablation.empty()) {
    NEPHRO_CHECK(o.preset->count() == 0 || p.preset == "paper", "--ablation builds on the "
                 "paper preset (Table 1 rows); it cannot be combined with --preset ", p.preset);
    opt = PromptOptions::ablation(parse_ablation(p.ablation));
  } else if (p.preset == "authors-code") {
    opt = PromptOptions::authors_code();
  } else if (p.preset == "paper") {
    opt = PromptOptions::paper();
  } else if (p.preset == "authors-c0947") {
    opt = PromptOptions::authors_c0947();
  } else if (p.preset == "authors-2023") {
    opt = PromptOptions::authors_2023();
  } else {
    NEPHRO_FAIL("--preset '", p.preset, "': expected authors-code|paper|authors-c0947|authors-2023");
  }
  if (o.size->count()) opt.size = p.size;
  if (o.patch_rule->count()) {
    if (p.patch_rule == "all-nonzero") {
      opt.patch_rule = gbmseg::PatchRule::kAllNonZero;
    } else if (p.patch_rule == "threshold") {
      opt.patch_rule = gbmseg::PatchRule::kThreshold;
    } else {
      NEPHRO_FAIL("--patch-rule '", p.patch_rule, "': expected all-nonzero|threshold");
    }
  }
  if (o.patch_threshold->count()) opt.patch_threshold = p.patch_threshold;
  if (o.last->count()) opt.skip_last_row_col = !p.include_last_row_col;
  if (o.hard->count()) {
    if (p.hard == "off") {
      opt.hard_mode = gbmseg::HardMode::kOff;
      opt.hard_sample = false;
      opt.merge_h2_into_negatives = false;
    } else if (p.hard == "h1") {
      opt.hard_mode = gbmseg::HardMode::kH1;
      opt.hard_sample = true;
    } else if (p.hard == "h2") {
      opt.hard_mode = gbmseg::HardMode::kH2;
      opt.hard_sample = true;
    } else {
      NEPHRO_FAIL("--hard '", p.hard, "': expected off|h1|h2");
    }
  }
  if (o.order->count()) {
    if (p.order == "raster") {
      opt.order = gbmseg::PointOrder::kRaster;
    } else if (p.order == "cpython-set") {
      opt.order = gbmseg::PointOrder::kCPythonSet;
    } else {
      NEPHRO_FAIL("--order '", p.order, "': expected raster|cpython-set");
    }
  }
  if (o.ape_order->count()) {
    if (p.ape_order == "head") {
      opt.ape_order = gbmseg::ApeOrder::kHead;
    } else if (p.ape_order == "2023") {
      opt.ape_order = gbmseg::ApeOrder::k2023;
    } else {
      NEPHRO_FAIL("--ape-order '", p.ape_order, "': expected head|2023");
    }
  }
  if (o.d_sp_pos->count()) opt.d_sp_pos = parse_radius(p.d_sp_pos, "--d-sp-pos");
  if (o.d_sp_neg->count()) opt.d_sp_neg = parse_radius(p.d_sp_neg, "--d-sp-neg");
  if (o.d_ex->count()) opt.d_ex = parse_radius(p.d_ex, "--d-ex");
  if (o.d_sp_hard->count()) opt.d_sp_hard = parse_radius(p.d_sp_hard, "--d-sp-hard");
  if (o.scale_fallbacks->count()) opt.scale_fallbacks = p.scale_fallbacks;
  NEPHRO_CHECK(opt.size > 0 && opt.size % opt.patch_size == 0, "--size ", opt.size,
               " must be a positive multiple of the patch size ", opt.patch_size);
  return opt;
}

// ---------------------------------------------------------------------------
// Progress: a redrawn bar on a terminal, one plain line per target otherwise.
// ---------------------------------------------------------------------------

class Progress {
 public:
  Progress(size_t total, bool enabled) : total_(total), enabled_(enabled), tty_(stderr_is_tty()) {}

  void begin(size_t index, const std::string& name) {
    if (!enabled_ || !tty_) return;
    draw(index, name + " ...");
  }
  void end(size_t index, const std::string& name, const std::string& status, double seconds) {
    if (seconds > 0) {
      elapsed_ += seconds;
      ++timed_;
    }
    if (!enabled_) return;
    std::ostringstream line;
    line << "gbmseg [" << index + 1 << "/" << total_ << "] " << name << ": " << status;
    if (seconds > 0) line << std::fixed << std::setprecision(1) << " (" << seconds << " s)";
    if (tty_) {
      std::cerr << "\r\033[K" << line.str() << "\n";
      if (index + 1 < total_) draw(index + 1, "");
    } else {
      std::cerr << line.str() << std::endl;
    }
  }
  void finish() {
    if (enabled_ && tty_) std::cerr << "\r\033[K" << std::flush;
  }

 private:
  void draw(size_t done, const std::string& what) {
    const int width = 30;
    const int filled = total_ ? static_cast<int>(width * done / total_) : width;
    std::ostringstream bar;
    bar << "\r\033[K[" << std::string(filled, '#') << std::string(width - filled, '.') << "] "
        << done << "/" << total_;
    if (timed_ > 0 && done < total_) {
      const double eta = elapsed_ / timed_ * static_cast<double>(total_ - done);
      bar << std::fixed << std::setprecision(0) << "  eta " << eta << " s";
    }
    if (!what.empty()) bar << "  " << what;
    std::cerr << bar.str() << std::flush;
  }
  size_t total_;
  bool enabled_, tty_;
  double elapsed_ = 0.0;
  size_t timed_ = 0;
};

// ---------------------------------------------------------------------------
// Targets, ground truth, outputs
// ---------------------------------------------------------------------------

struct Target {
  std::string path;
  std::string name;  // file stem: output names
  std::string ground_truth;  // "" = none
};

struct TargetRecord {
  std::string status;  // ok | skipped | failed
  std::string message;
  int width = 0, height = 0;
  int n_pos = -1, n_neg = -1, n_warnings = -1;
  double t_features = NAN, t_prompts = NAN, t_segment = NAN, t_total = NAN;
  std::optional<eval::MaskMetrics> metrics;
  cv::Mat gt, pred;  // for the authors' Dice (kept only when metrics exist)
};

std::string out_path(const GbmSegParams& p, const std::string& name, const std::string& suffix) {
  return (fs::path(p.out) / (name + suffix)).string();
}

std::vector<std::string> output_files(const GbmSegParams& p, const std::string& name) {
  return {out_path(p, name, ".png"), out_path(p, name, ".prompts.json"),
          out_path(p, name, ".overlay.png")};
}

std::vector<Target> collect_targets(const GbmSegParams& p) {
  NEPHRO_CHECK(fs::exists(p.target), "--target '", p.target, "' does not exist");
  std::vector<Target> targets;
  if (fs::is_directory(p.target)) {
    for (const auto& f : io::list_image_files(p.target)) targets.push_back({f, io::file_stem(f), ""});
    NEPHRO_CHECK(!targets.empty(), "--target folder '", p.target, "' holds no image "
                 "(.png .jpg .jpeg .tif .tiff)");
  } else {
    targets.push_back({p.target, io::file_stem(p.target), ""});
  }
  std::map<std::string, std::string> seen;
  for (const auto& t : targets) {
    auto [it, fresh] = seen.emplace(t.name, t.path);
    NEPHRO_CHECK(fresh, "targets '", it->second, "' and '", t.path,
                 "' would write the same outputs '", t.name, ".*'; rename one");
  }
  if (!p.ground_truth.empty()) {
    NEPHRO_CHECK(fs::exists(p.ground_truth), "--ground-truth '", p.ground_truth,
                 "' does not exist");
    if (fs::is_directory(p.ground_truth)) {
      std::map<std::string, std::string> by_stem;
      for (const auto& f : io::list_image_files(p.ground_truth)) by_stem[io::file_stem(f)] = f;
      for (auto& t : targets) {
        auto it = by_stem.find(t.name);
        if (it != by_stem.end()) {
          t.ground_truth = it->second;
        } else {
          log_warn("no ground truth for target '", t.name, "' in '", p.ground_truth, "'");
        }
      }
    } else {
      NEPHRO_CHECK(targets.size() == 1, "--ground-truth is a file but --target is a folder of ",
                   targets.size(), " images; give a folder of masks named like the targets");
      targets[0].ground_truth = p.ground_truth;
    }
  }
  return targets;
}

// The reference mask keeps its raw values and channels (the authors resize the RGB mask
// with bicubic and test every channel for non-zero); 16-bit / float masks are binarised.
cv::Mat read_reference_mask(const std::string& path) {
  cv::Mat raw = io::read_image_raw(path);
  if (raw.depth() == CV_8U && raw.channels() <= 4) return raw;
  log_warn("reference mask '", path, "' is not 8-bit with 1-4 channels; binarised (non-zero ->"
           " 255) before resizing");
  return io::binarize_mask(raw);
}

nlohmann::json points_json(const std::vector<cv::Point2f>& pts, double sx = 1.0, double sy = 1.0) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& q : pts) a.push_back({q.x * sx, q.y * sy});
  return a;
}

const char* mask_resize_name(gbmseg::MaskResize m) {
  return m == gbmseg::MaskResize::kNearest ? "nearest" : "bilinear-threshold";
}

nlohmann::json timings_json(const gbmseg::SegmentTimings& t) {
  return {{"resize_s", t.resize},   {"features_s", t.features},
          {"prompts_s", t.prompts}, {"segment_s", t.segment},
          {"postprocess_s", t.postprocess}, {"total_s", t.total}};
}

void write_target_outputs(const GbmSegParams& p, const Target& t, const cv::Mat& target_rgb,
                          const gbmseg::SegmentResult& r, const gbmseg::GbmSegPipeline& pipe,
                          const nlohmann::json& run_info) {
  const double sx = static_cast<double>(r.mask.cols) / r.mask_working.cols;
  const double sy = static_cast<double>(r.mask.rows) / r.mask_working.rows;
  nlohmann::json j;
  j["target"] = {{"path", t.path}, {"name", t.name}, {"width", r.original_width},
                 {"height", r.original_height}};
  j["reference"] = run_info["reference"];
  j["backends"] = run_info["backends"];
  j["preset"] = run_info["preset"];
  j["ablation"] = run_info["ablation"];
  j["options"] = gbmseg::prompt_options_to_json(pipe.options());
  j["output"] = {{"mask", t.name + ".png"},
                 {"width", r.mask.cols},
                 {"height", r.mask.rows},
                 {"mask_resize", p.keep_working_size ? "none (working size kept)"
                                                     : mask_resize_name(pipe.pipeline_options().mask_resize)},
                 {"largest_contour", pipe.pipeline_options().largest_contour},
                 {"foreground_pixels", cv::countNonZero(r.mask)}};
  nlohmann::json sam;
  sam["frame"] = "pixels of the working S x S image (label 1 = positive, 0 = negative)";
  sam["points"] = points_json(r.points);
  sam["labels"] = r.labels;
  sam["points_output_frame"] = points_json(r.points, sx, sy);
  j["segmenter_prompts"] = sam;
  j["stages"] = gbmseg::prompt_result_to_json(r.prompts);
  j["warnings"] = r.prompts.warnings;
  j["timings"] = timings_json(r.timings);
  j["version"] = "nephroseg 0.1.0";

  // Overlay on the image at the written mask's size, with the prompts mapped there.
  const cv::Mat& base = p.keep_working_size ? r.image_working : target_rgb;
  cv::Mat overlay = io::overlay_mask(base, r.mask, io::colors::kYellow, 0.35, 1);
  std::vector<cv::Point2f> pos, neg;
  for (size_t i = 0; i < r.points.size(); ++i) {
    const cv::Point2f q(static_cast<float>(r.points[i].x * sx), static_cast<float>(r.points[i].y * sy));
    (r.labels[i] == 1 ? pos : neg).push_back(q);
  }
  const int radius = std::max(3, static_cast<int>(std::lround(std::max(r.mask.cols, r.mask.rows) / 110.0)));
  io::draw_points(overlay, neg, {}, io::colors::kRed, radius);
  io::draw_points(overlay, pos, {}, io::colors::kGreen, radius);

  // The mask goes last: a target counts as done when all three files exist.
  write_file_atomically(out_path(p, t.name, ".prompts.json"), j.dump(1) + "\n");
  io::write_png(out_path(p, t.name, ".overlay.png"), overlay);
  io::write_mask_png(out_path(p, t.name, ".png"), r.mask);
}

// Metrics of the written mask against the ground truth. The prediction is compared at the
// ground truth's size: the written mask if the sizes agree, else the working-size mask if
// that fits, else the mask resized to the truth (nearest) with a warning.
void add_metrics(TargetRecord& rec, const Target& t, const cv::Mat& written,
                 const cv::Mat& working) {
  if (t.ground_truth.empty()) return;
  cv::Mat gt = io::read_mask(t.ground_truth);
  cv::Mat pred = written;
  if (gt.size() != written.size()) {
    if (!working.empty() && gt.size() == working.size()) {
      pred = working;
    } else {
      log_warn("ground truth '", t.ground_truth, "' is ", gt.cols, "x", gt.rows,
               ", the mask ", written.cols, "x", written.rows,
               "; the mask is resized to the ground truth (nearest) for the metrics");
      pred = gbmseg::resize_mask(written, gt.cols, gt.rows, gbmseg::MaskResize::kNearest);
    }
  }
  rec.metrics = eval::compute_metrics(pred, gt);
  rec.gt = gt;
  rec.pred = pred;
}

std::string num(double v) { return std::isnan(v) ? std::string() : io::format_number(v); }
std::string num_int(int v) { return v < 0 ? std::string() : std::to_string(v); }

void write_summary(const GbmSegParams& p, const std::vector<Target>& targets,
                   const std::vector<TargetRecord>& recs, bool with_gt) {
  io::CsvRow header{"name", "target", "status", "message", "width", "height", "mask",
                    "n_pos", "n_neg", "n_warnings", "features_s", "prompts_s", "segment_s",
                    "total_s"};
  if (with_gt) {
    for (const char* c : {"ground_truth", "dice", "iou", "precision", "recall",
                          "dice_authors_weighted_mean", "miou_authors"}) {
      header.push_back(c);
    }
  }
  std::vector<io::CsvRow> rows;
  double sum[4] = {0, 0, 0, 0};
  int n = 0;
  std::vector<cv::Mat> gts, preds;
  for (size_t i = 0; i < targets.size(); ++i) {
    const TargetRecord& r = recs[i];
    io::CsvRow row{targets[i].name, targets[i].path, r.status, r.message,
                   r.width ? std::to_string(r.width) : "", r.height ? std::to_string(r.height) : "",
                   r.status == "failed" ? "" : targets[i].name + ".png",
                   num_int(r.n_pos), num_int(r.n_neg), num_int(r.n_warnings), num(r.t_features),
                   num(r.t_prompts), num(r.t_segment), num(r.t_total)};
    if (with_gt) {
      row.push_back(targets[i].ground_truth);
      if (r.metrics) {
        const eval::MaskMetrics& m = *r.metrics;
        for (double v : {m.dice, m.iou, m.precision, m.recall}) row.push_back(num(v));
        sum[0] += m.dice, sum[1] += m.iou, sum[2] += m.precision, sum[3] += m.recall;
        ++n;
        gts.push_back(r.gt);
        preds.push_back(r.pred);
      } else {
        for (int k = 0; k < 4; ++k) row.push_back("");
      }
      row.push_back("");
      row.push_back("");
    }
    rows.push_back(row);
  }
  if (with_gt) {
    io::CsvRow mean(header.size());
    mean[0] = "mean";
    mean[2] = "mean";
    mean[3] = detail::concat("over ", n, " image(s) with ground truth; textbook means; the "
                             "authors' weighted Dice mean (tools/dice.py) in its own column");
    if (n > 0) {
      const gbmseg::DiceSummary authors = gbmseg::evaluate_dice(gts, preds);
      const size_t base = header.size() - 7;
      for (int k = 0; k < 4; ++k) mean[base + 1 + k] = num(sum[k] / n);
      mean[base + 5] = num(authors.authors_mean);
      mean[base + 6] = num(authors.authors_miou);
      log_info("gbmseg: mean over ", n, " image(s): Dice ", io::format_fixed(sum[0] / n, 4),
               ", IoU ", io::format_fixed(sum[1] / n, 4), ", precision ",
               io::format_fixed(sum[2] / n, 4), ", recall ", io::format_fixed(sum[3] / n, 4),
               " (authors' weighted Dice ", io::format_fixed(authors.authors_mean, 4), ")");
    }
    rows.push_back(mean);
  }
  io::write_csv((fs::path(p.out) / "summary.csv").string(), header, rows);
}

int run_gbmseg(const GbmSegParams& p, const Overrides& o) {
  // --- validate everything cheap before loading models --------------------------------
  const PromptOptions options = build_prompt_options(p, o);
  gbmseg::PipelineOptions popt;
  if (p.mask_resize == "nearest") {
    popt.mask_resize = gbmseg::MaskResize::kNearest;
  } else if (p.mask_resize == "bilinear") {
    popt.mask_resize = gbmseg::MaskResize::kBilinearThreshold;
  } else {
    NEPHRO_FAIL("--mask-resize '", p.mask_resize, "': expected nearest|bilinear");
  }
  popt.resize_to_original = !p.keep_working_size;
  popt.largest_contour = p.largest_contour;
  NEPHRO_CHECK(fs::is_regular_file(p.reference_image), "--reference-image '", p.reference_image,
               "' does not exist");
  NEPHRO_CHECK(fs::is_regular_file(p.reference_mask), "--reference-mask '", p.reference_mask,
               "' does not exist");
  const auto known = [](const std::vector<std::string>& kinds, const std::string& k) {
    return std::find(kinds.begin(), kinds.end(), k) != kinds.end();
  };
  NEPHRO_CHECK(known(gbmseg::feature_extractor_kinds(), p.features), "--features '", p.features,
               "' is not available in this build (known: dinov2; weight-free backends such as "
               "'classical' are added by their own module)");
  NEPHRO_CHECK(known(gbmseg::point_segmenter_kinds(), p.segmenter), "--segmenter '", p.segmenter,
               "' is not available in this build (known: sam; weight-free backends such as "
               "'classical' are added by their own module)");
  const std::vector<Target> targets = collect_targets(p);
  NEPHRO_CHECK(!fs::exists(p.out) || fs::is_directory(p.out), "--out '", p.out,
               "' exists and is not a folder");
  fs::create_directories(p.out);

  gbmseg::BackendSpec fspec{p.features, p.dinov2, p.dinov2_type, p.dinov2_config};
  gbmseg::BackendSpec sspec{p.segmenter, p.sam, p.sam_type, p.sam_config};
  if (p.features == "dinov2") {
    NEPHRO_CHECK(!p.dinov2.empty(), "--dinov2 CHECKPOINT is required for --features dinov2");
    NEPHRO_CHECK(fs::is_regular_file(p.dinov2), "--dinov2 '", p.dinov2, "' does not exist");
    if (!p.dinov2_config.empty()) fspec.model_type.clear();
  }
  if (p.segmenter == "sam") {
    NEPHRO_CHECK(!p.sam.empty(), "--sam CHECKPOINT is required for --segmenter sam");
    NEPHRO_CHECK(fs::is_regular_file(p.sam), "--sam '", p.sam, "' does not exist");
    if (!p.sam_config.empty()) sspec.model_type.clear();
  }

  std::vector<TargetRecord> recs(targets.size());
  std::vector<size_t> todo;
  for (size_t i = 0; i < targets.size(); ++i) {
    const auto files = output_files(p, targets[i].name);
    const bool done = std::all_of(files.begin(), files.end(),
                                  [](const std::string& f) { return fs::is_regular_file(f); });
    if (done && !p.overwrite) {
      recs[i].status = "skipped";
      recs[i].message = "outputs exist (use --overwrite to redo)";
    } else {
      todo.push_back(i);
    }
  }

  // --- models and reference (only when something is left to do) -----------------------
  nlohmann::json run_info;
  run_info["reference"] = {{"image", p.reference_image}, {"mask", p.reference_mask}};
  run_info["preset"] = p.ablation.empty() ? p.preset : "paper";
  run_info["ablation"] = p.ablation.empty() ? nlohmann::json() : nlohmann::json(p.ablation);
  std::optional<gbmseg::GbmSegPipeline> pipe;
  if (!todo.empty()) {
    const auto t0 = Clock::now();
    auto fx = gbmseg::make_feature_extractor(fspec);
    auto sg = gbmseg::make_point_segmenter(sspec);
    const double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
    run_info["backends"] = {{"features", fx->name()}, {"segmenter", sg->name()}};
    pipe.emplace(fx, sg, options, popt);
    pipe->set_reference(io::read_image_rgb(p.reference_image),
                        read_reference_mask(p.reference_mask));
    log_info("gbmseg: ", fx->name(), " + ", sg->name(), " loaded in ",
             io::format_fixed(load_s, 1), " s; reference features in ",
             io::format_fixed(pipe->reference_seconds(), 1), " s (", pipe->reference_patch_sets().fg.size(),
             " fg / ", pipe->reference_patch_sets().bg.size(), " bg patches); ", todo.size(), " of ",
             targets.size(), " target(s) to segment at ", options.size, "x", options.size);
    run_info["reference_features_s"] = pipe->reference_seconds();
    run_info["model_load_s"] = load_s;
  } else {
    log_info("gbmseg: all ", targets.size(), " target(s) already have outputs in '", p.out,
             "' (use --overwrite to redo)");
  }

  // --- targets -------------------------------------------------------------------------
  Progress progress(targets.size(), !global_options().quiet);
  int failed = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    const Target& t = targets[i];
    TargetRecord& rec = recs[i];
    if (rec.status == "skipped") {
      try {
        const cv::Mat written = io::read_mask(out_path(p, t.name, ".png"));
        rec.width = written.cols;
        rec.height = written.rows;
        std::ifstream in(out_path(p, t.name, ".prompts.json"));
        const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
        if (j.is_object() && j.contains("stages")) {
          rec.n_pos = static_cast<int>(j["stages"]["final_pos"].size());
          rec.n_neg = static_cast<int>(j["stages"]["final_neg"].size());
          rec.n_warnings = static_cast<int>(j["warnings"].size());
        }
        add_metrics(rec, t, written, cv::Mat());
      } catch (const std::exception& e) {
        rec.message += std::string("; could not re-read: ") + e.what();
      }
      progress.end(i, t.name, "skipped (outputs exist)", 0.0);
      continue;
    }
    progress.begin(i, t.name);
    const auto t0 = Clock::now();
    try {
      const cv::Mat rgb = io::read_image_rgb(t.path);
      const gbmseg::SegmentResult r = pipe->segment(rgb);
      write_target_outputs(p, t, rgb, r, *pipe, run_info);
      rec.status = "ok";
      rec.width = r.original_width;
      rec.height = r.original_height;
      rec.n_pos = static_cast<int>(r.prompts.ape.final_pos.size());
      rec.n_neg = static_cast<int>(r.prompts.ape.final_neg.size());
      rec.n_warnings = static_cast<int>(r.prompts.warnings.size());
      rec.message = r.prompts.warnings.empty() ? "" : r.prompts.warnings.front();
      rec.t_features = r.timings.features;
      rec.t_prompts = r.timings.prompts;
      rec.t_segment = r.timings.segment;
      rec.t_total = r.timings.total;
      add_metrics(rec, t, r.mask, r.mask_working);
      std::ostringstream status;
      status << r.prompts.ape.final_pos.size() << " pos / " << r.prompts.ape.final_neg.size()
             << " neg";
      if (rec.metrics) status << ", Dice " << io::format_fixed(rec.metrics->dice, 4);
      progress.end(i, t.name, status.str(),
                   std::chrono::duration<double>(Clock::now() - t0).count());
    } catch (const std::exception& e) {
      ++failed;
      rec.status = "failed";
      rec.message = e.what();
      rec.metrics.reset();
      progress.end(i, t.name, "FAILED", 0.0);
      std::cerr << "error: target '" << t.path << "': " << e.what() << std::endl;
    }
  }
  progress.finish();

  write_summary(p, targets, recs, !p.ground_truth.empty());
  if (pipe) {
    run_info["options"] = gbmseg::prompt_options_to_json(pipe->options());
    run_info["targets"] = targets.size();
    run_info["segmented"] = todo.size() - static_cast<size_t>(failed);
    run_info["failed"] = failed;
    write_file_atomically((fs::path(p.out) / "run.json").string(), run_info.dump(1) + "\n");
  }
  const size_t ok = todo.size() - static_cast<size_t>(failed);
  log_info("gbmseg: ", ok, " segmented, ", targets.size() - todo.size(), " skipped, ", failed,
           " failed -> ", p.out, "/summary.csv");
  if (failed > 0) {
    std::cerr << "error: " << failed << " of " << targets.size() << " target(s) failed (see "
              << p.out << "/summary.csv)" << std::endl;
    return 1;
  }
  return 0;
}

Runner setup(CLI::App& app) {
  auto p = std::make_shared<GbmSegParams>();
  auto o = std::make_shared<Overrides>();
  app.footer(
      "Presets: authors-code = the public code (HEAD d327490): S 560, D_sp_pos = D_sp_neg = "
      "D_ex = 0.125 S, D_sp_hard 1 px, hard negatives off; paper = D_ex 0.25 S, D_sp_pos 0, "
      "D_sp_neg = D_sp_hard = 0.125 S, H1 hard sampling on. Any option below overrides the "
      "preset. See docs/gbmseg.md.");
  // Backends.
  app.add_option("--features", p->features, "patch-feature backend: dinov2 | classical (weight-free)")->capture_default_str();
  app.add_option("--segmenter", p->segmenter, "point-prompt segmenter backend: sam | classical (weight-free)")
      ->capture_default_str();
  app.add_option("--dinov2", p->dinov2, "DINOv2 checkpoint (dinov2_vit*14[_reg4]_pretrain.pth)");
  auto* dt = app.add_option("--dinov2-type", p->dinov2_type,
                            "vits14|vitb14|vitl14|vitg14, optionally _reg4 (authors: vitg14)")
                 ->capture_default_str();
  auto* dc = app.add_option("--dinov2-config", p->dinov2_config,
                            "JSON with the DinoVisionTransformer hyper-parameters");
  dc->excludes(dt);
  app.add_option("--sam", p->sam, "SAM checkpoint (sam_vit_{b,l,h}_*.pth)");
  auto* st = app.add_option("--sam-type", p->sam_type, "vit_b|vit_l|vit_h (authors: vit_l)")
                 ->capture_default_str();
  auto* sc = app.add_option("--sam-config", p->sam_config, "JSON with the SAM hyper-parameters");
  sc->excludes(st);
  // Data.
  app.add_option("--reference-image", p->reference_image, "reference image")->required();
  app.add_option("--reference-mask", p->reference_mask,
                 "GBM mask of the reference image (non-zero = GBM)")
      ->required();
  app.add_option("--target", p->target, "target image, or a folder of images")->required();
  app.add_option("--ground-truth", p->ground_truth,
                 "ground-truth mask (file), or folder of masks named like the targets: adds "
                 "Dice, IoU, precision, recall to summary.csv");
  app.add_option("--out", p->out, "output folder")->required();
  // Prompt engineering.
  o->preset = app.add_option("--preset", p->preset, "authors-code|paper|authors-c0947|authors-2023")
                  ->capture_default_str();
  app.add_option("--ablation", p->ablation,
                 "paper Table 1 row: forward|backward|exclusive|sparse|hard (cumulative; "
                 "builds on --preset paper)");
  o->size = app.add_option("--size", p->size, "working size S (images resized to S x S, "
                           "multiple of 14; preset: 560)");
  o->patch_rule = app.add_option("--patch-rule", p->patch_rule,
                                 "reference patch rule: all-nonzero (authors) | threshold");
  o->patch_threshold = app.add_option("--patch-threshold", p->patch_threshold,
                                      "threshold for --patch-rule threshold (preset: 128)");
  o->last = app.add_flag("--include-last-row-col", p->include_last_row_col,
                         "also classify the last patch row/column (authors skip them)");
  o->hard = app.add_option("--hard", p->hard,
                           "hard negatives: off | h1 (rejected matches, paper reading) | h2 "
                           "(farthest matches, authors' list); h1/h2 append them to the negatives");
  o->order = app.add_option("--order", p->order,
                            "point order before sampling: raster | cpython-set (bit-exact with "
                            "the authors' Python set order)");
  o->ape_order = app.add_option("--ape-order", p->ape_order, "APE step order: head | 2023");
  o->d_sp_pos = app.add_option("--d-sp-pos", p->d_sp_pos,
                               "positive sparse radius: fraction of S (0.125) or pixels (70px)");
  o->d_sp_neg = app.add_option("--d-sp-neg", p->d_sp_neg, "negative sparse radius (as --d-sp-pos)");
  o->d_ex = app.add_option("--d-ex", p->d_ex, "exclusive radius (as --d-sp-pos)");
  o->d_sp_hard = app.add_option("--d-sp-hard", p->d_sp_hard, "hard sparse radius (as --d-sp-pos)");
  o->scale_fallbacks = app.add_flag("--scale-fallbacks", p->scale_fallbacks,
                                    "scale the fallback points (250,250)/(10,10) by S/512");
  // Output.
  app.add_option("--mask-resize", p->mask_resize,
                 "S x S mask -> original size: nearest | bilinear (then >= 128)")
      ->capture_default_str();
  app.add_flag("--keep-working-size", p->keep_working_size,
               "write masks at S x S (the authors' output) instead of the original size");
  app.add_flag("--largest-contour", p->largest_contour,
               "keep only the largest contour, filled (authors' max_contour; off in main.py)");
  app.add_flag("--overwrite", p->overwrite, "redo targets whose outputs exist");
  return [p, o]() { return run_gbmseg(*p, *o); };
}

NEPHRO_COMMAND("", "gbmseg",
               "one-shot GBM segmentation (GBMSeg: DINOv2 matching + SAM) of images from one "
               "reference image and mask",
               setup);

}  // namespace
}  // namespace nephroseg::cli
