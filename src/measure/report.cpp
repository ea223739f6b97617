#include "nephroseg/measure/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "nephroseg/core/error.h"
#include "nephroseg/core/atomic_file.h"
#include "nephroseg/core/batch_record.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/overlay.h"

namespace nephroseg::measure {

namespace {

constexpr double kPi = 3.14159265358979323846;

nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

nlohmann::json range_json(const ReferenceRange& r) {
  return {{"id", r.id},          {"population", r.population}, {"compared_with", estimator_name(r.method)},
          {"low_nm", num(r.low_nm)}, {"high_nm", num(r.high_nm)}, {"mean_nm", num(r.mean_nm)},
          {"sd_nm", num(r.sd_nm)},   {"rule", r.rule},             {"source", r.source}};
}

nlohmann::json stats_json(const WidthStats& s, double k) {
  return {{"n", s.n},
          {"n_excluded", s.n_excluded},
          {"n_truncated", s.n_truncated},
          {"harmonic_mean_nm", num(s.harmonic_mean * k)},
          {"arithmetic_mean_nm", num(s.mean * k)},
          {"median_nm", num(s.median * k)},
          {"sd_nm", num(s.sd * k)},
          {"q25_nm", num(s.q25 * k)},
          {"q75_nm", num(s.q75 * k)},
          {"min_nm", num(s.min * k)},
          {"max_nm", num(s.max * k)}};
}

std::string path_in(const std::string& dir, const std::string& file) {
  return (std::filesystem::path(dir) / file).string();
}

}  // namespace

double reference_value_nm(const ThicknessResult& r, const ReferenceRange& range) {
  return range.method == Estimator::kOrthogonalIntercept ? r.oi_stereological_harmonic_px * r.nm_per_pixel
                                                         : r.direct.mean * r.nm_per_pixel;
}

std::string thickness_summary_json(const std::string& name, const ThicknessResult& r, const ReferenceRange& range,
                                   const ThicknessOptions& o, const CalibrationRecord* calibration) {
  const double k = r.nm_per_pixel;
  nlohmann::json oi = stats_json(r.oi, k);
  oi["raw_2d_note"] =
      "shortest chords measured in the 2-D image; equal to the thickness where the section is perpendicular "
      "to the membrane (as in the phantoms)";
  oi["stereological"] = {
      {"harmonic_x_8_over_3pi_nm", num(r.oi_stereological_harmonic_px * k)},
      {"arithmetic_x_pi_over_4_nm", num(r.oi_stereological_arithmetic_px * k)},
      {"note",
       "true 3-D thickness estimate for randomly oriented sections (Jensen, Gundersen & Osterby 1978); "
       "compare with orthogonal-intercept norms"}};
  nlohmann::json direct = stats_json(r.direct, k);
  direct["note"] = "2 x distance from the medial axis to the boundary; compare with direct-measurement norms";
  nlohmann::json segs = nlohmann::json::array();
  for (const auto& s : r.segments)
    segs.push_back({{"id", s.id}, {"n", s.n}, {"length_px", s.length_px}, {"mean_nm", num(s.mean_px * k)},
                    {"median_nm", num(s.median_px * k)}});
  direct["segments"] = segs;
  const double value = reference_value_nm(r, range);
  const std::string compared = range.method == Estimator::kOrthogonalIntercept
                                   ? "orthogonal_intercept.stereological.harmonic_x_8_over_3pi_nm"
                                   : "direct.arithmetic_mean_nm";
  nlohmann::json doc = {
      {"name", name},
      {"nm_per_pixel", k},
      {"mask_area_px", r.mask_area_px},
      {"skeleton_length_px", r.skeleton_length_px},
      {"area_per_skeleton_length_nm", num(r.area_per_length_px() * k)},
      {"orthogonal_intercept", oi},
      {"direct", direct},
      {"reference_range", range_json(range)},
      {"classification",
       {{"compared_value", compared},
        {"value_nm", num(value)},
        {"class", classify_thickness(value, range)},
        {"orthogonal_intercept_stereological_class",
         classify_thickness(r.oi_stereological_harmonic_px * k, range)},
        {"direct_mean_class", classify_thickness(r.direct.mean * k, range)}}},
      {"options",
       {{"sample_spacing_px", o.sample_spacing_px},
        {"seed", o.seed},
        {"smoothing_sigma_px", o.smoothing_sigma_px},
        {"max_angle_deg", o.max_angle_deg},
        {"tangential_factor", o.tangential_factor},
        {"local_window", o.local_window},
        {"border_margin_px", o.border_margin_px},
        {"spur_length_factor", o.spur_length_factor}}}};
  if (calibration)
    doc["calibration"] = {{"source", calibration->source},
                          {"file", calibration->file},
                          {"file_source", calibration->file_source},
                          {"file_nm_per_pixel", calibration->file_nm_per_pixel > 0
                                                    ? nlohmann::json(calibration->file_nm_per_pixel)
                                                    : nlohmann::json(nullptr)},
                          {"file_unit", calibration->file_unit}};
  return doc.dump(2) + "\n";
}

cv::Mat draw_thickness_overlay(const cv::Mat& image, const cv::Mat& mask, const ThicknessResult& r) {
  cv::Mat canvas = io::to_canvas(image.empty() ? mask : image, mask.size());
  io::tint_mask(canvas, mask, io::colors::kBlue, 0.25);
  io::draw_mask_contour(canvas, mask, io::colors::kCyan, 1);
  int counter = 0;
  for (const auto& m : r.measurements) {
    if (m.estimator == Estimator::kDirect) {
      if (m.excluded) continue;
      // A diameter at every 4th skeleton point keeps the picture legible.
      if ((counter++ % 4) != 0) continue;
      io::draw_segment(canvas, m.end_a, m.end_b, io::colors::kYellow, 1);
    } else {
      io::draw_segment(canvas, m.end_a, m.end_b, m.excluded ? io::colors::kRed : io::colors::kGreen, 1);
    }
  }
  const double k = r.nm_per_pixel;
  char l1[160], l2[160];
  std::snprintf(l1, sizeof l1, "OI: HM %.0f nm (x8/3pi %.0f nm), n=%d, excl. %d",
                r.oi.harmonic_mean * k, r.oi_stereological_harmonic_px * k, r.oi.n, r.oi.n_excluded);
  std::snprintf(l2, sizeof l2, "direct: mean %.0f nm, median %.0f nm, n=%d", r.direct.mean * k, r.direct.median * k,
                r.direct.n);
  const double scale = std::clamp(canvas.cols / 1000.0, 0.35, 1.0);
  const int step = static_cast<int>(std::ceil(34 * scale)) + 2;
  io::draw_text(canvas, l1, cv::Point(6, 6), io::colors::kWhite, scale);
  io::draw_text(canvas, l2, cv::Point(6, 6 + step), io::colors::kWhite, scale);
  io::draw_text(canvas, "green: OI chords  red: excluded  yellow: direct widths", cv::Point(6, 6 + 2 * step),
                io::colors::kWhite, scale);
  return canvas;
}

cv::Mat draw_thickness_histogram(const ThicknessResult& r, const ReferenceRange& range, const std::string& title) {
  const int W = 900, panel_h = 260, top = 40, left = 70, right = 20;
  cv::Mat fig(top + 2 * panel_h + 40, W, CV_8UC3, cv::Scalar(255, 255, 255));
  const double k = r.nm_per_pixel;
  std::vector<double> oi, direct;
  for (const auto& m : r.measurements) {
    if (m.excluded) continue;
    (m.estimator == Estimator::kOrthogonalIntercept ? oi : direct).push_back(m.width_px * k);
  }
  double lo = 0, hi = 1;
  for (double v : oi) hi = std::max(hi, v);
  for (double v : direct) hi = std::max(hi, v);
  if (std::isfinite(range.high_nm)) hi = std::max(hi, range.high_nm * 1.05);
  hi *= 1.05;
  const int bins = 40;
  const double bw = (hi - lo) / bins;
  auto xpix = [&](double v) { return left + static_cast<int>((v - lo) / (hi - lo) * (W - left - right)); };
  const cv::Scalar black(0, 0, 0), grey(150, 150, 150);
  auto draw_panel = [&](int y0, const std::vector<double>& values, io::Rgb color, const std::string& label,
                        const std::vector<std::pair<std::string, double>>& marks) {
    const int y1 = y0 + panel_h - 40;
    // reference band
    const double rl = std::isfinite(range.low_nm) ? range.low_nm : lo;
    const double rh = std::isfinite(range.high_nm) ? range.high_nm : hi;
    cv::rectangle(fig, cv::Point(xpix(rl), y0), cv::Point(xpix(rh), y1), cv::Scalar(225, 240, 225), cv::FILLED);
    std::vector<int> counts(bins, 0);
    for (double v : values) counts[std::clamp(static_cast<int>((v - lo) / bw), 0, bins - 1)]++;
    const int cmax = std::max(1, *std::max_element(counts.begin(), counts.end()));
    for (int b = 0; b < bins; ++b) {
      const int h = static_cast<int>(static_cast<double>(counts[b]) / cmax * (y1 - y0 - 20));
      cv::rectangle(fig, cv::Point(xpix(lo + b * bw) + 1, y1 - h), cv::Point(xpix(lo + (b + 1) * bw) - 1, y1),
                    cv::Scalar(color.r, color.g, color.b), cv::FILLED);
    }
    cv::line(fig, cv::Point(left, y1), cv::Point(W - right, y1), black, 1);
    cv::line(fig, cv::Point(left, y0), cv::Point(left, y1), black, 1);
    // x ticks
    const double step = hi > 2000 ? 500 : hi > 800 ? 200 : hi > 300 ? 100 : hi > 120 ? 50 : hi > 40 ? 10 : 5;
    for (double v = 0; v <= hi; v += step) {
      cv::line(fig, cv::Point(xpix(v), y1), cv::Point(xpix(v), y1 + 5), black, 1);
      cv::putText(fig, std::to_string(static_cast<int>(v)), cv::Point(xpix(v) - 10, y1 + 20),
                  cv::FONT_HERSHEY_SIMPLEX, 0.4, black, 1, cv::LINE_AA);
    }
    cv::putText(fig, "n = " + std::to_string(values.size()), cv::Point(left - 62, y0 + 14), cv::FONT_HERSHEY_SIMPLEX,
                0.4, black, 1, cv::LINE_AA);
    cv::putText(fig, label, cv::Point(left + 6, y0 + 14), cv::FONT_HERSHEY_SIMPLEX, 0.5, black, 1, cv::LINE_AA);
    int ty = y0 + 32;
    for (const auto& [name, v] : marks) {
      if (!std::isfinite(v)) continue;
      cv::line(fig, cv::Point(xpix(v), y0 + 20), cv::Point(xpix(v), y1), black, 1, cv::LINE_AA);
      char buf[96];
      std::snprintf(buf, sizeof buf, "%s %.0f nm", name.c_str(), v);
      cv::putText(fig, buf, cv::Point(W - right - 260, ty), cv::FONT_HERSHEY_SIMPLEX, 0.45, black, 1, cv::LINE_AA);
      ty += 18;
    }
  };
  cv::putText(fig, title.empty() ? "GBM thickness (nm)" : title + " - GBM thickness (nm)", cv::Point(left, 26),
              cv::FONT_HERSHEY_SIMPLEX, 0.6, black, 1, cv::LINE_AA);
  draw_panel(top, oi, io::colors::kGreen, "orthogonal intercepts (raw 2-D chords)",
             {{"harmonic mean", r.oi.harmonic_mean * k}, {"x 8/(3 pi)", r.oi_stereological_harmonic_px * k}});
  draw_panel(top + panel_h, direct, io::Rgb{200, 160, 0}, "direct (medial axis) widths",
             {{"mean", r.direct.mean * k}, {"median", r.direct.median * k}});
  cv::putText(fig, "shaded: reference '" + range.id + "'", cv::Point(left, top + 2 * panel_h + 20),
              cv::FONT_HERSHEY_SIMPLEX, 0.45, grey * 0.5, 1, cv::LINE_AA);
  return fig;
}

std::vector<std::string> write_thickness_report(const std::string& out_dir, const std::string& name,
                                                const cv::Mat& image, const cv::Mat& mask, const ThicknessResult& r,
                                                const ReferenceRange& range, const ThicknessOptions& o,
                                                const CalibrationRecord* calibration) {
  const double k = r.nm_per_pixel;
  std::vector<io::CsvRow> rows;
  int index = 0;
  for (const auto& m : r.measurements)
    rows.push_back({estimator_name(m.estimator), std::to_string(index++), io::format_fixed(m.position.x, 3),
                    io::format_fixed(m.position.y, 3), io::format_fixed(m.end_a.x, 3), io::format_fixed(m.end_a.y, 3),
                    io::format_fixed(m.end_b.x, 3), io::format_fixed(m.end_b.y, 3), io::format_fixed(m.width_px, 4),
                    io::format_fixed(m.width_px * k, 3), std::to_string(m.segment), m.excluded ? "1" : "0",
                    m.reason});
  // Render everything first, then write: a failure leaves no partial set behind.
  const cv::Mat overlay = draw_thickness_overlay(image, mask, r);
  const cv::Mat hist = draw_thickness_histogram(r, range, name);
  const std::string json = thickness_summary_json(name, r, range, o, calibration);
  std::vector<std::string> paths = {path_in(out_dir, name + "_measurements.csv"),
                                    path_in(out_dir, name + "_summary.json"),
                                    path_in(out_dir, name + "_histogram.png"), path_in(out_dir, name + "_overlay.png")};
  io::write_csv(paths[0],
                {"estimator", "index", "x_px", "y_px", "end_a_x_px", "end_a_y_px", "end_b_x_px", "end_b_y_px",
                 "width_px", "width_nm", "segment", "excluded", "reason"},
                rows);
  write_file_atomically(paths[1], json);
  io::write_png(paths[2], hist);
  io::write_png(paths[3], overlay);
  return paths;
}

std::vector<std::string> write_thickness_batch_summary(const std::string& out_dir,
                                                       const std::vector<std::string>& names,
                                                       const std::vector<ThicknessResult>& results,
                                                       const ReferenceRange& range) {
  return write_thickness_batch_summary(out_dir, names, results, range, {}, "summary");
}

std::vector<std::string> write_thickness_batch_summary(const std::string& out_dir,
                                                       const std::vector<std::string>& names,
                                                       const std::vector<ThicknessResult>& results,
                                                       const ReferenceRange& range,
                                                       const std::vector<std::string>& calibration_sources,
                                                       const std::string& stem) {
  NEPHRO_CHECK(names.size() == results.size(), "batch summary: ", names.size(), " names for ", results.size(),
               " results");
  NEPHRO_CHECK(calibration_sources.empty() || calibration_sources.size() == names.size(), "batch summary: ",
               calibration_sources.size(), " calibration sources for ", names.size(), " images");
  const bool with_sources = !calibration_sources.empty();
  std::vector<io::CsvRow> rows;
  nlohmann::json items = nlohmann::json::array();
  for (size_t i = 0; i < names.size(); ++i) {
    const auto& r = results[i];
    const double k = r.nm_per_pixel;
    const double value = reference_value_nm(r, range);
    rows.push_back({names[i], io::format_number(k), std::to_string(r.oi.n), std::to_string(r.oi.n_excluded),
                    io::format_fixed(r.oi.harmonic_mean * k, 2), io::format_fixed(r.oi.mean * k, 2),
                    io::format_fixed(r.oi.median * k, 2), io::format_fixed(r.oi_stereological_harmonic_px * k, 2),
                    io::format_fixed(r.oi_stereological_arithmetic_px * k, 2), std::to_string(r.direct.n),
                    std::to_string(r.direct.n_excluded), io::format_fixed(r.direct.mean * k, 2),
                    io::format_fixed(r.direct.median * k, 2), io::format_fixed(r.direct.sd * k, 2), range.id,
                    io::format_fixed(value, 2), classify_thickness(value, range)});
    items.push_back({{"name", names[i]},
                     {"oi_harmonic_mean_2d_nm", num(r.oi.harmonic_mean * k)},
                     {"oi_stereological_harmonic_nm", num(r.oi_stereological_harmonic_px * k)},
                     {"direct_mean_nm", num(r.direct.mean * k)},
                     {"class", classify_thickness(value, range)}});
    if (with_sources) {
      rows.back().push_back(calibration_sources[i]);
      items.back()["calibration_source"] = calibration_sources[i];
    }
  }
  const std::vector<std::string> paths = {path_in(out_dir, stem + ".csv"), path_in(out_dir, stem + ".json")};
  io::CsvRow header = {"name", "nm_per_pixel", "oi_n", "oi_excluded", "oi_harmonic_mean_2d_nm",
                       "oi_arithmetic_mean_2d_nm", "oi_median_2d_nm", "oi_stereological_harmonic_nm",
                       "oi_stereological_arithmetic_nm", "direct_n", "direct_excluded", "direct_mean_nm",
                       "direct_median_nm", "direct_sd_nm", "reference_range", "compared_value_nm", "class"};
  if (with_sources) header.push_back("calibration_source");
  io::write_csv(paths[0], header, rows);
  nlohmann::json doc = {{"images", items}, {"reference_range", range_json(range)}};
  write_file_atomically(paths[1], doc.dump(2) + "\n");
  return paths;
}

nlohmann::json width_stats_to_record(const WidthStats& s) {
  return {{"n", s.n},           {"n_excluded", s.n_excluded}, {"n_truncated", s.n_truncated},
          {"mean", record_number(s.mean)}, {"harmonic_mean", record_number(s.harmonic_mean)}, {"median", record_number(s.median)},
          {"sd", record_number(s.sd)},     {"min", record_number(s.min)},     {"max", record_number(s.max)},
          {"q25", record_number(s.q25)},   {"q75", record_number(s.q75)}};
}

WidthStats width_stats_from_record(const nlohmann::json& j) {
  NEPHRO_CHECK(j.is_object(), "a damaged record (width statistics)");
  WidthStats s;
  s.n = j.value("n", 0);
  s.n_excluded = j.value("n_excluded", 0);
  s.n_truncated = j.value("n_truncated", 0);
  s.mean = record_number_of(j, "mean");
  s.harmonic_mean = record_number_of(j, "harmonic_mean");
  s.median = record_number_of(j, "median");
  s.sd = record_number_of(j, "sd");
  s.min = record_number_of(j, "min");
  s.max = record_number_of(j, "max");
  s.q25 = record_number_of(j, "q25");
  s.q75 = record_number_of(j, "q75");
  return s;
}

}  // namespace nephroseg::measure
