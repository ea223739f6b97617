#include "nephroseg/eval/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <sstream>

#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/core/atomic_file.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/overlay.h"

namespace fs = std::filesystem;

namespace nephroseg::eval {

namespace {

nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

std::string fmt(double v, int decimals = 4) { return io::format_fixed(v, decimals); }

// name -> path, flagging duplicate names.
std::map<std::string, std::vector<std::string>> by_stem(const std::string& dir) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& f : io::list_image_files(dir)) out[io::file_stem(f)].push_back(f);
  return out;
}

cv::Mat make_panels(const cv::Mat& image, const cv::Mat& pred, const cv::Mat& truth, int panel) {
  cv::Mat base = io::to_canvas(image, truth.size());
  cv::Mat t = io::overlay_mask(base, truth, io::colors::kGreen, 0.35, 2);
  cv::Mat p = io::overlay_mask(base, pred, io::colors::kMagenta, 0.35, 2);
  // Comparison: TP green-yellow, FP red, FN blue.
  cv::Mat c = base.clone();
  cv::Mat pb = pred != 0, tb = truth != 0;
  io::tint_mask(c, pb & tb, io::colors::kYellow, 0.55);
  io::tint_mask(c, pb & ~tb, io::colors::kRed, 0.7);
  io::tint_mask(c, ~pb & tb, io::colors::kBlue, 0.7);
  std::vector<cv::Mat> parts = {io::fit_within(t, panel), io::fit_within(p, panel), io::fit_within(c, panel)};
  const int gap = 6;
  cv::Mat strip(parts[0].rows, parts[0].cols * 3 + 2 * gap, CV_8UC3, cv::Scalar(255, 255, 255));
  for (int i = 0; i < 3; ++i) parts[i].copyTo(strip(cv::Rect(i * (parts[0].cols + gap), 0, parts[i].cols, parts[i].rows)));
  return strip;
}

}  // namespace

int EvalRun::num_ok() const {
  return static_cast<int>(std::count_if(items.begin(), items.end(), [](const EvalItem& i) { return i.ok; }));
}

EvalItem evaluate_pair(const std::string& name, const cv::Mat& pred, const cv::Mat& truth, const cv::Mat& image,
                       const EvalOptions& o) {
  EvalItem item;
  item.name = name;
  if (pred.size() != truth.size()) {
    item.status = "size mismatch: prediction " + std::to_string(pred.cols) + "x" + std::to_string(pred.rows) +
                  " vs truth " + std::to_string(truth.cols) + "x" + std::to_string(truth.rows);
    return item;
  }
  item.metrics = compute_metrics(pred, truth, o.metrics);
  cv::Mat img = image;
  if (!img.empty() && img.size() != truth.size()) {
    log_warn("image for '", name, "' has another size than its masks; drawing on black");
    img = cv::Mat();
  }
  item.panels = make_panels(img, pred, truth, o.panel_size);
  item.ok = true;
  return item;
}

cv::Mat render_panels(const EvalItem& item, const EvalOptions& o) {
  const cv::Mat pred = io::read_mask(item.pred_path, o.pred_mask);
  const cv::Mat truth = io::read_mask(item.truth_path, o.truth_mask);
  cv::Mat image;
  if (!item.image_path.empty()) image = io::read_image_rgb(item.image_path);
  if (!image.empty() && image.size() != truth.size()) image = cv::Mat();
  return make_panels(image, pred, truth, o.panel_size);
}

void summarize_run(EvalRun& run) {
  run.summary.clear();
  for (const auto& m : metric_names()) {
    std::vector<double> v;
    for (const auto& it : run.items)
      if (it.ok) v.push_back(metric_value(it.metrics, m));
    run.summary[m] = summarize(v);
  }
}

EvalRun evaluate_folders(const std::string& pred_dir, const std::string& truth_dir, const EvalOptions& o,
                         const Shard& shard) {
  // Options first: a bad value is one error, not a failure recorded for every image.
  const double ratio = o.metrics.boundary_dilation_ratio;
  NEPHRO_CHECK(std::isfinite(ratio) && ratio > 0,
               "boundary IoU dilation ratio must be a positive, finite number (got ", ratio, ")");
  NEPHRO_CHECK(fs::is_directory(pred_dir), "prediction folder '", pred_dir, "' does not exist");
  NEPHRO_CHECK(fs::is_directory(truth_dir), "truth folder '", truth_dir, "' does not exist");
  const auto preds = by_stem(pred_dir), truths = by_stem(truth_dir);
  std::map<std::string, std::vector<std::string>> images;
  if (!o.image_dir.empty()) {
    NEPHRO_CHECK(fs::is_directory(o.image_dir), "image folder '", o.image_dir, "' does not exist");
    images = by_stem(o.image_dir);
  }
  std::vector<std::string> names;
  for (const auto& [k, v] : preds) names.push_back(k);
  for (const auto& [k, v] : truths)
    if (!preds.count(k)) names.push_back(k);
  std::sort(names.begin(), names.end());
  NEPHRO_CHECK(!names.empty(), "no image files (.png .jpg .tif) in '", pred_dir, "' or '", truth_dir, "'");
  EvalRun run;
  run.inputs_total = names.size();
  for (size_t index = 0; index < names.size(); ++index) {
    if (!shard.owns(index)) continue;
    const std::string& name = names[index];
    EvalItem item;
    item.name = name;
    item.index = index;
    auto p = preds.find(name);
    auto t = truths.find(name);
    if (p != preds.end()) item.pred_path = p->second.front();
    if (t != truths.end()) item.truth_path = t->second.front();
    if (p == preds.end()) item.status = "missing prediction";
    else if (t == truths.end()) item.status = "missing truth";
    else if (p->second.size() > 1 || t->second.size() > 1) item.status = "duplicate name (several files share it)";
    if (item.status != "ok") {
      run.items.push_back(item);
      continue;
    }
    try {
      const cv::Mat pred = io::read_mask(item.pred_path, o.pred_mask);
      const cv::Mat truth = io::read_mask(item.truth_path, o.truth_mask);
      cv::Mat image;
      auto im = images.find(name);
      if (im != images.end()) {
        item.image_path = im->second.front();
        image = io::read_image_rgb(item.image_path);
      }
      EvalItem done = evaluate_pair(name, pred, truth, image, o);
      done.index = index;
      done.pred_path = item.pred_path;
      done.truth_path = item.truth_path;
      done.image_path = item.image_path;
      item = std::move(done);
    } catch (const Error& e) {
      item.ok = false;
      item.status = std::string("unreadable: ") + e.what();
    }
    if (!item.ok) log_warn("eval: ", name, ": ", item.status);
    run.items.push_back(std::move(item));
  }
  summarize_run(run);
  return run;
}

cv::Mat draw_box_plot(const std::vector<double>& values_in, const std::string& metric) {
  const int W = 420, H = 360, left = 70, right = 30, top = 40, bottom = 50;
  cv::Mat fig(H, W, CV_8UC3, cv::Scalar(255, 255, 255));
  const cv::Scalar black(0, 0, 0), box_fill(200, 220, 245), dark(40, 70, 140);
  std::vector<double> v;
  for (double x : values_in)
    if (std::isfinite(x)) v.push_back(x);
  const SummaryStats s = summarize(v);
  double lo = 0, hi = 1;
  const bool unit = metric != "hd95";
  if (!unit) {
    hi = v.empty() ? 1.0 : std::max(1.0, s.max * 1.1);
  } else if (!v.empty() && s.min > 0.5) {
    lo = std::floor(s.min * 10) / 10 - 0.1;  // zoom in on well-performing sets
    lo = std::max(0.0, lo);
  }
  auto ypix = [&](double val) { return top + static_cast<int>((hi - val) / (hi - lo) * (H - top - bottom)); };
  cv::line(fig, cv::Point(left, top), cv::Point(left, H - bottom), black, 1);
  for (int i = 0; i <= 5; ++i) {
    const double val = lo + (hi - lo) * i / 5.0;
    cv::line(fig, cv::Point(left - 5, ypix(val)), cv::Point(left, ypix(val)), black, 1);
    cv::line(fig, cv::Point(left + 1, ypix(val)), cv::Point(W - right, ypix(val)), cv::Scalar(235, 235, 235), 1);
    char buf[32];
    std::snprintf(buf, sizeof buf, unit ? "%.2f" : "%.1f", val);
    cv::putText(fig, buf, cv::Point(8, ypix(val) + 4), cv::FONT_HERSHEY_SIMPLEX, 0.4, black, 1, cv::LINE_AA);
  }
  std::string title = metric + (unit ? "" : " (px)") + "   n = " + std::to_string(v.size());
  cv::putText(fig, title, cv::Point(left, 24), cv::FONT_HERSHEY_SIMPLEX, 0.55, black, 1, cv::LINE_AA);
  const int cx = (left + W - right) / 2, half = 60;
  if (!v.empty()) {
    // Whiskers to the furthest points within 1.5 IQR; the rest drawn as outliers.
    const double wlo_lim = s.q25 - 1.5 * s.iqr, whi_lim = s.q75 + 1.5 * s.iqr;
    double wlo = s.q25, whi = s.q75;
    for (double x : v) {
      if (x >= wlo_lim) wlo = std::min(wlo, x);
      if (x <= whi_lim) whi = std::max(whi, x);
    }
    cv::line(fig, cv::Point(cx, ypix(whi)), cv::Point(cx, ypix(s.q75)), black, 1);
    cv::line(fig, cv::Point(cx, ypix(s.q25)), cv::Point(cx, ypix(wlo)), black, 1);
    cv::line(fig, cv::Point(cx - half / 2, ypix(whi)), cv::Point(cx + half / 2, ypix(whi)), black, 1);
    cv::line(fig, cv::Point(cx - half / 2, ypix(wlo)), cv::Point(cx + half / 2, ypix(wlo)), black, 1);
    cv::rectangle(fig, cv::Point(cx - half, ypix(s.q75)), cv::Point(cx + half, ypix(s.q25)), box_fill, cv::FILLED);
    cv::rectangle(fig, cv::Point(cx - half, ypix(s.q75)), cv::Point(cx + half, ypix(s.q25)), dark, 1);
    cv::line(fig, cv::Point(cx - half, ypix(s.median)), cv::Point(cx + half, ypix(s.median)), cv::Scalar(230, 120, 0), 2);
    // Mean marker.
    cv::drawMarker(fig, cv::Point(cx, ypix(s.mean)), cv::Scalar(0, 120, 0), cv::MARKER_DIAMOND, 10, 2);
    // Jittered points (deterministic).
    std::mt19937 gen(7);
    for (double x : v) {
      const bool outlier = x < wlo_lim || x > whi_lim;
      const int jx = cx + half + 25 + static_cast<int>(gen() % 40);
      cv::circle(fig, cv::Point(jx, ypix(x)), 3, outlier ? cv::Scalar(220, 30, 30) : cv::Scalar(60, 60, 60),
                 cv::FILLED, cv::LINE_AA);
    }
    char buf[96];
    std::snprintf(buf, sizeof buf, "median %.3f  mean %.3f  IQR %.3f", s.median, s.mean, s.iqr);
    cv::putText(fig, buf, cv::Point(left, H - 18), cv::FONT_HERSHEY_SIMPLEX, 0.42, black, 1, cv::LINE_AA);
  } else {
    cv::putText(fig, "no values", cv::Point(cx - 40, H / 2), cv::FONT_HERSHEY_SIMPLEX, 0.6, black, 1, cv::LINE_AA);
  }
  return fig;
}

std::string render_html_report(const EvalRun& run, const EvalOptions& o) {
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" << io::html_escape(o.title)
    << "</title>\n<style>body{font-family:sans-serif;margin:20px;color:#222}table{border-collapse:collapse}"
       "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}th{background:#eef}"
       "td.name{text-align:left}.card{border:1px solid #ccc;border-radius:6px;padding:10px;margin:12px 0}"
       ".bad{color:#b00}.plots img{margin:4px;border:1px solid #ddd}.legend span{margin-right:14px}</style>"
       "</head><body>\n";
  h << "<h1>" << io::html_escape(o.title) << "</h1>\n";
  h << "<p id=\"counts\">" << run.items.size() << " image names, " << run.num_ok() << " evaluated, "
    << run.items.size() - run.num_ok() << " with problems.</p>\n";
  h << "<h2>Summary</h2>\n<table id=\"summary\"><tr><th>metric</th><th>n</th><th>mean</th><th>SD</th><th>median</th>"
       "<th>IQR</th><th>min</th><th>max</th></tr>\n";
  for (const auto& m : metric_names()) {
    const auto& s = run.summary.at(m);
    h << "<tr><td class=\"name\">" << m << "</td><td>" << s.n << "</td><td>" << fmt(s.mean) << "</td><td>"
      << fmt(s.sd) << "</td><td>" << fmt(s.median) << "</td><td>" << fmt(s.iqr) << "</td><td>" << fmt(s.min)
      << "</td><td>" << fmt(s.max) << "</td></tr>\n";
  }
  h << "</table>\n<p>Empty prediction and empty truth count as Dice 1; HD95 is undefined (NaN, left out of the "
       "summary) when exactly one of them is empty. HD95 in pixels.</p>\n";
  h << "<div class=\"plots\">";
  for (const auto& m : metric_names()) {
    std::vector<double> v;
    for (const auto& it : run.items)
      if (it.ok) v.push_back(metric_value(it.metrics, m));
    h << "<img alt=\"box plot " << m << "\" width=\"280\" src=\"" << io::png_data_uri(draw_box_plot(v, m)) << "\">";
  }
  h << "</div>\n";
  std::vector<const EvalItem*> problems, ok;
  for (const auto& it : run.items) (it.ok ? ok : problems).push_back(&it);
  if (!problems.empty()) {
    h << "<h2 class=\"bad\">Problems</h2>\n<table id=\"problems\"><tr><th>name</th><th>problem</th></tr>\n";
    for (const auto* it : problems)
      h << "<tr><td class=\"name\">" << io::html_escape(it->name) << "</td><td class=\"name bad\">"
        << io::html_escape(it->status) << "</td></tr>\n";
    h << "</table>\n";
  }
  std::stable_sort(ok.begin(), ok.end(), [](const EvalItem* a, const EvalItem* b) {
    return a->metrics.dice < b->metrics.dice;
  });
  h << "<h2>Images, worst Dice first</h2>\n<p class=\"legend\"><span>left: truth (green)</span><span>middle: "
       "prediction (magenta)</span><span>right: agreement (yellow), false positive (red), false negative "
       "(blue)</span></p>\n";
  for (const auto* it : ok) {
    const auto& m = it->metrics;
    h << "<div class=\"card\" id=\"img-" << io::html_escape(it->name) << "\"><h3>" << io::html_escape(it->name) << "</h3>\n";
    h << "<table class=\"metrics\"><tr>";
    for (const auto& n : metric_names()) h << "<th>" << n << "</th>";
    h << "</tr><tr>";
    for (const auto& n : metric_names()) h << "<td>" << fmt(metric_value(m, n)) << "</td>";
    h << "</tr></table>\n";
    if (!it->panels.empty())
      h << "<img alt=\"" << io::html_escape(it->name) << " overlays\" src=\"" << io::png_data_uri(it->panels) << "\">\n";
    h << "</div>\n";
  }
  h << "</body></html>\n";
  return h.str();
}

std::vector<std::string> write_eval_report(const std::string& out_dir, const EvalRun& run, const EvalOptions& o) {
  auto path = [&](const std::string& f) { return (fs::path(out_dir) / f).string(); };
  // Build every file's content first; then write (each write is atomic).
  std::vector<io::CsvRow> per_image;
  nlohmann::json items = nlohmann::json::array();
  for (const auto& it : run.items) {
    io::CsvRow row = {it.name, it.status};
    nlohmann::json j = {{"name", it.name}, {"status", it.status}, {"prediction", it.pred_path},
                        {"truth", it.truth_path}};
    for (const auto& m : metric_names()) {
      const double v = it.ok ? metric_value(it.metrics, m) : std::nan("");
      row.push_back(io::format_number(v));
      j[m] = num(v);
    }
    for (int64_t c : {it.metrics.tp, it.metrics.fp, it.metrics.fn, it.metrics.tn})
      row.push_back(it.ok ? std::to_string(c) : "");
    per_image.push_back(row);
    items.push_back(j);
  }
  io::CsvRow header = {"name", "status"};
  for (const auto& m : metric_names()) header.push_back(m);
  for (const char* c : {"tp", "fp", "fn", "tn"}) header.push_back(c);
  std::vector<io::CsvRow> summary_rows;
  nlohmann::json summary = nlohmann::json::object();
  for (const auto& m : metric_names()) {
    const auto& s = run.summary.at(m);
    summary_rows.push_back({m, std::to_string(s.n), std::to_string(s.n_nan), io::format_number(s.mean),
                            io::format_number(s.sd), io::format_number(s.median), io::format_number(s.q25),
                            io::format_number(s.q75), io::format_number(s.iqr), io::format_number(s.min),
                            io::format_number(s.max)});
    summary[m] = {{"n", s.n},           {"n_nan", s.n_nan},   {"mean", num(s.mean)}, {"sd", num(s.sd)},
                  {"median", num(s.median)}, {"q25", num(s.q25)}, {"q75", num(s.q75)}, {"iqr", num(s.iqr)},
                  {"min", num(s.min)},  {"max", num(s.max)}};
  }
  nlohmann::json doc = {{"title", o.title},
                        {"num_images", run.items.size()},
                        {"num_evaluated", run.num_ok()},
                        {"summary", summary},
                        {"images", items},
                        {"conventions",
                         {{"empty_both", "dice = iou = precision = recall = boundary_iou = 1, hd95 = 0"},
                          {"empty_one", "hd95 undefined (null here, NaN in CSV), other overlap metrics 0"},
                          {"hd95_units", "pixels"},
                          {"boundary_iou_dilation_ratio", o.metrics.boundary_dilation_ratio}}}};
  const std::string html = render_html_report(run, o);
  std::vector<std::pair<std::string, cv::Mat>> plots;
  for (const auto& m : metric_names()) {
    std::vector<double> v;
    for (const auto& it : run.items)
      if (it.ok) v.push_back(metric_value(it.metrics, m));
    plots.emplace_back(path("boxplot_" + m + ".png"), draw_box_plot(v, m));
  }
  std::vector<std::string> written;
  io::write_csv(path("per_image.csv"), header, per_image);
  written.push_back(path("per_image.csv"));
  io::CsvRow sheader = {"metric", "n", "n_nan", "mean", "sd", "median", "q25", "q75", "iqr", "min", "max"};
  io::write_csv(path("summary.csv"), sheader, summary_rows);
  written.push_back(path("summary.csv"));
  write_file_atomically(path("summary.json"), doc.dump(2) + "\n");
  written.push_back(path("summary.json"));
  for (const auto& [p, img] : plots) {
    io::write_png(p, img);
    written.push_back(p);
  }
  write_file_atomically(path("report.html"), html);
  written.push_back(path("report.html"));
  return written;
}

}  // namespace nephroseg::eval
