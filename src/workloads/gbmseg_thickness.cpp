// Thickness in a GBMSeg run: the per-target numbers, their JSON record and report.html
// (see nephroseg/workloads/gbmseg.h).
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "nephroseg/core/atomic_file.h"
#include "nephroseg/core/batch_record.h"
#include "nephroseg/core/error.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/overlay.h"
#include "nephroseg/measure/report.h"
#include "nephroseg/workloads/gbmseg.h"
#include "nephroseg/workloads/measure.h"

namespace fs = std::filesystem;

namespace nephroseg::workloads {

namespace {

measure::WidthStats in_nm(measure::WidthStats s, double k) {
  for (double* v : {&s.mean, &s.harmonic_mean, &s.median, &s.sd, &s.min, &s.max, &s.q25, &s.q75}) *v *= k;
  return s;
}

// One horizontal box per measured target (direct widths: min, q25, median, q75, max),
// the reference range shaded.
cv::Mat draw_box_plot(const std::vector<const GbmSegTargetRecord*>& recs,
                      const measure::ReferenceRange& range) {
  const int left = 170, right = 30, top = 40, row_h = 26, bottom = 50;
  const int W = 900, H = top + row_h * static_cast<int>(recs.size()) + bottom;
  cv::Mat fig(H, W, CV_8UC3, cv::Scalar(255, 255, 255));
  double hi = 1;
  for (const auto* r : recs) hi = std::max(hi, r->thickness->direct.max);
  if (std::isfinite(range.high_nm)) hi = std::max(hi, range.high_nm);
  hi *= 1.08;
  auto xpix = [&](double v) { return left + static_cast<int>(std::lround(v / hi * (W - left - right))); };
  const cv::Scalar black(0, 0, 0), box(200, 220, 245), dark(40, 70, 140);
  const double rl = std::isfinite(range.low_nm) ? range.low_nm : 0,
               rh = std::isfinite(range.high_nm) ? range.high_nm : hi;
  cv::rectangle(fig, cv::Point(xpix(rl), top - 6), cv::Point(xpix(rh), H - bottom), cv::Scalar(225, 240, 225),
                cv::FILLED);
  cv::putText(fig, "local GBM width (direct, medial axis), nm; shaded: reference '" + range.id + "'",
              cv::Point(10, 22), cv::FONT_HERSHEY_SIMPLEX, 0.5, black, 1, cv::LINE_AA);
  for (size_t i = 0; i < recs.size(); ++i) {
    const measure::WidthStats& s = recs[i]->thickness->direct;
    const int cy = top + row_h * static_cast<int>(i) + row_h / 2;
    std::string name = recs[i]->name;
    if (name.size() > 22) name = name.substr(0, 21) + "~";
    cv::putText(fig, name, cv::Point(8, cy + 5), cv::FONT_HERSHEY_SIMPLEX, 0.42, black, 1, cv::LINE_AA);
    if (s.n == 0) continue;
    cv::line(fig, cv::Point(xpix(s.min), cy), cv::Point(xpix(s.max), cy), black, 1, cv::LINE_AA);
    for (double v : {s.min, s.max})
      cv::line(fig, cv::Point(xpix(v), cy - 5), cv::Point(xpix(v), cy + 5), black, 1);
    cv::rectangle(fig, cv::Point(xpix(s.q25), cy - 8), cv::Point(xpix(s.q75), cy + 8), box, cv::FILLED);
    cv::rectangle(fig, cv::Point(xpix(s.q25), cy - 8), cv::Point(xpix(s.q75), cy + 8), dark, 1);
    cv::line(fig, cv::Point(xpix(s.median), cy - 8), cv::Point(xpix(s.median), cy + 8), dark, 2);
  }
  const int y1 = H - bottom;
  cv::line(fig, cv::Point(left, y1), cv::Point(W - right, y1), black, 1);
  const double step = hi > 2000 ? 500 : hi > 800 ? 200 : hi > 300 ? 100 : hi > 120 ? 50 : 10;
  for (double v = 0; v <= hi; v += step) {
    cv::line(fig, cv::Point(xpix(v), y1), cv::Point(xpix(v), y1 + 5), black, 1);
    cv::putText(fig, std::to_string(static_cast<int>(v)), cv::Point(xpix(v) - 10, y1 + 20),
                cv::FONT_HERSHEY_SIMPLEX, 0.4, black, 1, cv::LINE_AA);
  }
  return fig;
}

std::string cell(double v, int digits = 1) { return std::isfinite(v) ? io::format_fixed(v, digits) : ""; }

}  // namespace

GbmSegThickness measure_gbmseg_mask(const cv::Mat& mask, double nm, const std::string& source,
                                    const GbmSegMeasureOptions& o, measure::ThicknessResult* out) {
  GbmSegThickness t;
  t.nm_per_pixel = nm;
  t.calibration_source = source;
  if (cv::countNonZero(mask) == 0) {
    t.note = "the mask is empty: nothing to measure";
    return t;
  }
  measure::ThicknessOptions options = o.thickness;
  options.nm_per_pixel = nm;
  try {
    const measure::ThicknessResult r = measure::measure_thickness(mask, options);
    t.oi = in_nm(r.oi, nm);
    t.direct = in_nm(r.direct, nm);
    t.oi_harmonic_3d_nm = r.oi_stereological_harmonic_px * nm;
    t.reference_value_nm = measure::reference_value_nm(r, o.range);
    if (t.oi.n + t.direct.n == 0) {
      t.note = "no width could be measured (every sample was excluded)";
    } else {
      t.verdict = measure::classify_thickness(t.reference_value_nm, o.range);
    }
    if (out) *out = r;
  } catch (const Error& e) {
    t.note = e.what();
  }
  return t;
}

nlohmann::json gbmseg_thickness_to_json(const GbmSegThickness& t, const measure::ReferenceRange& range) {
  nlohmann::json j;
  j["nm_per_pixel"] = t.nm_per_pixel;
  j["calibration_source"] = t.calibration_source;
  j["orthogonal_intercepts_2d_nm"] = measure::width_stats_to_record(t.oi);
  j["direct_nm"] = measure::width_stats_to_record(t.direct);
  j["oi_harmonic_3d_nm"] = record_number(t.oi_harmonic_3d_nm);
  j["oi_harmonic_3d_note"] =
      "harmonic mean of the 2-D intercepts x 8/(3 pi) (Jensen, Gundersen & Osterby 1978)";
  j["reference_range"] = {{"id", range.id},
                          {"compared_with", measure::estimator_name(range.method)},
                          {"low_nm", record_number(range.low_nm)},
                          {"high_nm", record_number(range.high_nm)}};
  j["reference_value_nm"] = record_number(t.reference_value_nm);
  j["class"] = t.verdict;
  j["note"] = t.note;
  return j;
}

std::optional<GbmSegThickness> gbmseg_thickness_from_json(const nlohmann::json& record) {
  if (!record.is_object() || !record.contains("thickness") || !record["thickness"].is_object())
    return std::nullopt;
  const nlohmann::json& j = record["thickness"];
  GbmSegThickness t;
  t.nm_per_pixel = record_number_of(j, "nm_per_pixel");
  t.calibration_source = j.value("calibration_source", std::string());
  t.oi = measure::width_stats_from_record(j.value("orthogonal_intercepts_2d_nm", nlohmann::json::object()));
  t.direct = measure::width_stats_from_record(j.value("direct_nm", nlohmann::json::object()));
  t.oi_harmonic_3d_nm = record_number_of(j, "oi_harmonic_3d_nm");
  t.reference_value_nm = record_number_of(j, "reference_value_nm");
  t.verdict = j.value("class", std::string());
  t.note = j.value("note", std::string());
  return t;
}

std::string write_gbmseg_report(const std::string& out_dir, const std::vector<GbmSegTargetRecord>& records,
                                const measure::ReferenceRange& range) {
  std::vector<const GbmSegTargetRecord*> measured;
  for (const auto& r : records)
    if (r.thickness && r.thickness->note.empty()) measured.push_back(&r);
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>GBMSeg thickness</title>\n"
    << "<style>body{font-family:sans-serif;margin:20px}table{border-collapse:collapse}"
    << "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}"
    << ".thin{color:#1f5fbf}.thick{color:#c0392b}img{max-width:100%}</style></head><body>\n";
  h << "<h1>GBMSeg: GBM thickness</h1>\n<p>" << measured.size() << " of " << records.size()
    << " target(s) measured. Reference range '" << io::html_escape(range.id) << "' ("
    << io::html_escape(range.population) << "): " << cell(range.low_nm, 0) << "&ndash;"
    << cell(range.high_nm, 0) << " nm, compared with the "
    << io::html_escape(measure::estimator_name(range.method))
    << " estimate. Source: " << io::html_escape(range.source) << ".</p>\n";
  h << "<table><tr><th>target</th><th>class</th><th>OI harmonic &times; 8/(3&pi;) nm</th><th>direct median "
       "nm</th>"
    << "<th>direct mean "
       "nm</th><th>intercepts</th><th>nm/px</th><th>calibration</th><th>Dice</th><th>note</th></tr>\n";
  for (const auto& r : records) {
    h << "<tr><td>" << io::html_escape(r.name) << "</td>";
    if (r.thickness) {
      const GbmSegThickness& t = *r.thickness;
      h << "<td class=\"" << io::html_escape(t.verdict) << "\">" << io::html_escape(t.verdict) << "</td><td>"
        << cell(t.oi_harmonic_3d_nm) << "</td><td>" << cell(t.direct.median) << "</td><td>"
        << cell(t.direct.mean) << "</td><td>" << t.oi.n << "</td><td>" << io::format_number(t.nm_per_pixel)
        << "</td><td>" << io::html_escape(t.calibration_source) << "</td>";
    } else {
      h << "<td></td><td></td><td></td><td></td><td></td><td></td><td></td>";
    }
    h << "<td>" << (r.metrics ? io::format_fixed(r.metrics->dice, 4) : "") << "</td><td>"
      << io::html_escape(r.status == ItemStatus::kFailed ? "failed: " + r.message
                         : r.thickness                   ? r.thickness->note
                                                         : "no pixel size")
      << "</td></tr>\n";
  }
  h << "</table>\n";
  if (!measured.empty()) {
    h << "<h2>Distribution per target</h2>\n<img alt=\"box plot\" src=\""
      << io::png_data_uri(draw_box_plot(measured, range)) << "\">\n<h2>Thickness maps</h2>\n";
    for (const auto* r : measured) {
      const std::string png = (fs::path(out_dir) / (r->name + ".thickness.png")).string();
      h << "<h3>" << io::html_escape(r->name) << "</h3>\n";
      if (!fs::is_regular_file(png)) continue;
      cv::Mat pic = io::read_image_rgb(png);
      if (pic.cols > 1200)
        cv::resize(pic, pic, cv::Size(1200, pic.rows * 1200 / pic.cols), 0, 0, cv::INTER_AREA);
      h << "<img alt=\"" << io::html_escape(r->name) << "\" src=\"" << io::png_data_uri(pic) << "\">\n";
    }
  }
  h << "</body></html>\n";
  const std::string path = (fs::path(out_dir) / "report.html").string();
  write_file_atomically(path, h.str());
  return path;
}

}  // namespace nephroseg::workloads
