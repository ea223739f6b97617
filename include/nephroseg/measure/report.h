// nephroseg/measure/report.h: files written by `nephroseg measure`.
//
// Per image <name>:
//   <name>_measurements.csv  every measurement: estimator, index, x, y (px), the
//                            chord end points (px), width_px, width_nm, segment,
//                            excluded (0/1), reason
//   <name>_summary.json      statistics of both estimators in nm (raw 2-D and
//                            stereological OI values, direct values, per segment),
//                            calibration, reference range with its source, class
//   <name>_histogram.png     width histograms (OI chords, direct widths) in nm with
//                            the reference range shaded
//   <name>_overlay.png       the image with the mask, OI chords (green; excluded
//                            red) and direct diameters (yellow ticks)
// For a batch: summary.csv (one row per image) and summary.json.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <opencv2/core/mat.hpp>

#include <string>
#include <vector>

#include "nephroseg/measure/reference.h"
#include "nephroseg/measure/thickness.h"

namespace nephroseg::measure {

/// Where an image's pixel size came from ("calibration" in <name>_summary.json).
struct CalibrationRecord {
  std::string source;            ///< "option" or the file's calibration source ("dm", ...)
  std::string file;              ///< the file whose calibration was read
  std::string file_source;       ///< what that file carries ("none", "dm", "ome-xml", ...)
  double file_nm_per_pixel = 0;  ///< the file's own value; 0 = none (written as null)
  std::string file_unit;         ///< its unit text as stored
};

/// The summary JSON text of one image (NaN written as null), with a "calibration"
/// object when `calibration` is given.
std::string thickness_summary_json(const std::string& name, const ThicknessResult& result,
                                   const ReferenceRange& range, const ThicknessOptions& options,
                                   const CalibrationRecord* calibration = nullptr);
/// The value compared with `range` (nm): OI stereological harmonic estimate or the
/// direct arithmetic mean, by range.method.
double reference_value_nm(const ThicknessResult& result, const ReferenceRange& range);

/// RGB overlay: image (grey or RGB; empty = the mask itself) + mask tint + chords.
cv::Mat draw_thickness_overlay(const cv::Mat& image, const cv::Mat& mask, const ThicknessResult& result);
/// RGB histogram figure (two panels).
cv::Mat draw_thickness_histogram(const ThicknessResult& result, const ReferenceRange& range,
                                 const std::string& title = "");

/// Writes the four per-image files into out_dir (atomically) and returns their paths.
std::vector<std::string> write_thickness_report(const std::string& out_dir, const std::string& name,
                                                const cv::Mat& image, const cv::Mat& mask,
                                                const ThicknessResult& result, const ReferenceRange& range,
                                                const ThicknessOptions& options,
                                                const CalibrationRecord* calibration = nullptr);

/// summary.csv and summary.json over several images.
std::vector<std::string> write_thickness_batch_summary(const std::string& out_dir,
                                                       const std::vector<std::string>& names,
                                                       const std::vector<ThicknessResult>& results,
                                                       const ReferenceRange& range);
/// The same into <stem>.csv / <stem>.json, with each image's pixel-size source as the
/// last column ("calibration_source") when `calibration_sources` is not empty.
std::vector<std::string> write_thickness_batch_summary(const std::string& out_dir,
                                                       const std::vector<std::string>& names,
                                                       const std::vector<ThicknessResult>& results,
                                                       const ReferenceRange& range,
                                                       const std::vector<std::string>& calibration_sources,
                                                       const std::string& stem);

/// The exact numbers of a WidthStats as a record object (n, n_excluded, n_truncated,
/// mean, harmonic_mean, median, sd, min, max, q25, q75; non-finite values as null), in
/// whatever unit the stats are in, and back (throws for a non-object).
nlohmann::json width_stats_to_record(const WidthStats& stats);
WidthStats width_stats_from_record(const nlohmann::json& record);

}  // namespace nephroseg::measure
