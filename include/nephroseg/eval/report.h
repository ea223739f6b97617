// nephroseg/eval/report.h: evaluating a folder of predicted masks against a folder
// of truth masks, and the report files of `nephroseg eval`.
//
// Pairing: files are matched by name without extension ("a.png" <-> "a.tif").
// Problems are reported per image and never stop the run: a prediction without
// truth ("missing truth"), a truth without prediction ("missing prediction"),
// different sizes ("size mismatch WxH vs WxH"), unreadable files ("unreadable: ..."),
// two files with one name ("duplicate name").
//
// Files written into the output folder (all atomically):
//   per_image.csv      name, status, the seven metrics, tp, fp, fn, tn
//   summary.csv        metric, n, n_nan, mean, sd, median, q25, q75, iqr, min, max
//   summary.json       the same plus the per-image values and the problems
//   boxplot_<metric>.png   one box plot per metric (drawn with OpenCV)
//   report.html        self-contained (images embedded as base64 PNG data URIs):
//                      summary table, box plots, problems, then every image with
//                      truth / prediction / comparison overlays and its metrics,
//                      worst Dice first.
#pragma once

#include <opencv2/core/mat.hpp>

#include <map>
#include <string>
#include <vector>

#include "nephroseg/core/shard.h"
#include "nephroseg/eval/metrics.h"
#include "nephroseg/io/mask.h"

namespace nephroseg::eval {

struct EvalOptions {
  io::MaskReadOptions pred_mask;   ///< how prediction files become binary masks
  io::MaskReadOptions truth_mask;  ///< how truth files become binary masks
  MetricOptions metrics;
  std::string image_dir;           ///< optional folder of the underlying images (same names)
  int panel_size = 320;            ///< longest side of each picture in the HTML report
  std::string title = "Segmentation evaluation";
};

struct EvalItem {
  std::string name;
  size_t index = 0;           ///< position among all names of the run (sorted)
  std::string pred_path, truth_path, image_path;
  bool ok = false;
  std::string status = "ok";  ///< "ok" or what went wrong
  MaskMetrics metrics;
  cv::Mat panels;             ///< RGB strip: truth | prediction | comparison (ok items)
};

struct EvalRun {
  std::vector<EvalItem> items;                       ///< sorted by name
  size_t inputs_total = 0;                           ///< names of the whole run (all shards)
  std::map<std::string, SummaryStats> summary;       ///< per metric over ok items
  int num_ok() const;
};

/// Evaluates every pair (of `shard`: names i with i mod N = K-1); never throws for
/// per-image problems (only for missing folders).
EvalRun evaluate_folders(const std::string& pred_dir, const std::string& truth_dir, const EvalOptions& options = {},
                         const Shard& shard = {});
/// The truth | prediction | comparison strip of an ok item, drawn again from its files
/// (what evaluate_pair stored in item.panels).
cv::Mat render_panels(const EvalItem& item, const EvalOptions& options);
/// Evaluates in-memory masks (used by evaluate_folders and tests). Sizes must match.
EvalItem evaluate_pair(const std::string& name, const cv::Mat& pred, const cv::Mat& truth, const cv::Mat& image,
                       const EvalOptions& options = {});
/// Recomputes run.summary from run.items.
void summarize_run(EvalRun& run);

/// Box plot of one metric's values (RGB).
cv::Mat draw_box_plot(const std::vector<double>& values, const std::string& metric);
/// The self-contained HTML text.
std::string render_html_report(const EvalRun& run, const EvalOptions& options);
/// Writes all report files into out_dir; returns their paths.
std::vector<std::string> write_eval_report(const std::string& out_dir, const EvalRun& run,
                                           const EvalOptions& options = {});

}  // namespace nephroseg::eval
