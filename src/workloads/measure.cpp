// run_measure_batch / merge_measure_shards (see nephroseg/workloads/measure.h).
#include "nephroseg/workloads/measure.h"

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>

#include "nephroseg/core/atomic_file.h"
#include "nephroseg/core/batch_record.h"
#include "nephroseg/core/error.h"
#include "nephroseg/io/calibration.h"
#include "nephroseg/io/image.h"
#include "nephroseg/measure/report.h"

namespace fs = std::filesystem;

namespace nephroseg::workloads {

// The method's own types and steps (ThicknessOptions, measure_thickness, pixel sizes,
// reference ranges, the per-image report) are used throughout this file.
using namespace nephroseg::measure;

namespace {

// --- the numbers of the batch summary, exactly, for the shard records ---------------------

nlohmann::json summary_numbers(const ThicknessResult& r, const std::string& source) {
  return {{"nm_per_pixel", r.nm_per_pixel},
          {"oi", width_stats_to_record(r.oi)},
          {"direct", width_stats_to_record(r.direct)},
          {"oi_stereological_harmonic_px", record_number(r.oi_stereological_harmonic_px)},
          {"oi_stereological_arithmetic_px", record_number(r.oi_stereological_arithmetic_px)},
          {"mask_area_px", r.mask_area_px},
          {"skeleton_length_px", r.skeleton_length_px},
          {"calibration_source", source}};
}

ThicknessResult summary_from_numbers(const nlohmann::json& j) {
  NEPHRO_CHECK(j.is_object() && j.contains("oi") && j.contains("direct"), "merge: a damaged measure record");
  ThicknessResult r;
  r.nm_per_pixel = record_number_of(j, "nm_per_pixel");
  r.oi = width_stats_from_record(j["oi"]);
  r.direct = width_stats_from_record(j["direct"]);
  r.oi_stereological_harmonic_px = record_number_of(j, "oi_stereological_harmonic_px");
  r.oi_stereological_arithmetic_px = record_number_of(j, "oi_stereological_arithmetic_px");
  r.mask_area_px = record_number_of(j, "mask_area_px");
  r.skeleton_length_px = record_number_of(j, "skeleton_length_px");
  return r;
}

nlohmann::json range_key(const ReferenceRange& r) {
  return {{"id", r.id},
          {"method", estimator_name(r.method)},
          {"low_nm", record_number(r.low_nm)},
          {"high_nm", record_number(r.high_nm)}};
}

// Settings every shard must share (and from which the merge rebuilds the range).
nlohmann::json settings_json(const MeasureBatchOptions& o) {
  const ThicknessOptions& t = o.thickness;
  return {{"mask", o.mask},
          {"image", o.image},
          {"nm_per_pixel", o.nm_per_pixel},
          {"range", range_key(o.range)},
          {"thickness",
           {{"sample_spacing_px", t.sample_spacing_px},
            {"seed", t.seed},
            {"smoothing_sigma_px", t.smoothing_sigma_px},
            {"max_angle_deg", t.max_angle_deg},
            {"max_chord_px", t.max_chord_px},
            {"tangential_factor", t.tangential_factor},
            {"short_factor", t.short_factor},
            {"local_window", t.local_window},
            {"border_margin_px", t.border_margin_px},
            {"spur_length_factor", t.spur_length_factor}}},
          {"mask_channel", o.mask_read.channel},
          {"mask_threshold", o.mask_read.threshold}};
}

ReferenceRange range_from_key(const nlohmann::json& j) {
  NEPHRO_CHECK(j.is_object(), "merge: the measure records name no reference range");
  const std::string id = j.value("id", std::string());
  ReferenceRange r;
  try {
    r = find_reference_range(id);
  } catch (const Error&) {
    r = custom_reference_range(record_number_of(j, "low_nm"), record_number_of(j, "high_nm"),
                               j.value("method", std::string()) == estimator_name(Estimator::kDirect)
                                   ? Estimator::kDirect
                                   : Estimator::kOrthogonalIntercept);
  }
  NEPHRO_CHECK(range_key(r) == j, "merge: cannot rebuild the reference range '", id,
               "' of the measure records");
  return r;
}

// (mask, image) pairs of the whole batch, sorted by mask name.
std::vector<std::pair<std::string, std::string>> list_pairs(const MeasureBatchOptions& o) {
  std::vector<std::pair<std::string, std::string>> pairs;
  if (fs::is_directory(o.mask)) {
    const auto masks = io::list_image_files(o.mask);
    NEPHRO_CHECK(!masks.empty(), "no mask files (.png .jpg .tif) in '", o.mask, "'");
    std::map<std::string, std::string> images;
    if (!o.image.empty()) {
      NEPHRO_CHECK(fs::is_directory(o.image), "--image must be a folder when --mask is a folder ('", o.image,
                   "')");
      for (const auto& f : io::list_image_files(o.image)) images[io::file_stem(f)] = f;
    }
    for (const auto& m : masks) {
      std::string img;
      if (!o.image.empty()) {
        auto it = images.find(io::file_stem(m));
        NEPHRO_CHECK(it != images.end(), "no image named '", io::file_stem(m), ".*' in '", o.image,
                     "' for mask '", m, "'");
        img = it->second;
      }
      pairs.emplace_back(m, img);
    }
  } else {
    NEPHRO_CHECK(fs::is_regular_file(o.mask), "mask '", o.mask, "' does not exist");
    NEPHRO_CHECK(o.image.empty() || fs::is_regular_file(o.image), "image '", o.image, "' does not exist");
    pairs.emplace_back(o.mask, o.image);
  }
  return pairs;
}

}  // namespace

namespace {

// "name: OI harmonic mean ... | direct mean ... | normal vs 'range'".
std::string result_line(const std::string& name, const ThicknessResult& r, const ReferenceRange& range) {
  const double k = r.nm_per_pixel, value = reference_value_nm(r, range);
  char line[300];
  std::snprintf(
      line, sizeof line,
      "%s: OI harmonic mean %.1f nm (x8/3pi: %.1f nm; n=%d, excluded %d) | direct mean %.1f nm, median "
      "%.1f nm (n=%d) | %s vs '%s'",
      name.c_str(), r.oi.harmonic_mean * k, r.oi_stereological_harmonic_px * k, r.oi.n, r.oi.n_excluded,
      r.direct.mean * k, r.direct.median * k, r.direct.n, classify_thickness(value, range).c_str(),
      range.id.c_str());
  return line;
}

}  // namespace

MeasureBatchResult run_measure_batch(const MeasureBatchOptions& o, const EventSink& events) {
  const std::string& out_dir = o.out_dir;
  const auto warn = [&events](const std::string& w) {
    Event e;
    e.kind = Event::Kind::kWarning;
    e.message = w;
    emit(events, e);
  };
  const double explicit_nm = parse_nm_per_pixel_option(o.nm_per_pixel);
  const auto all_pairs = list_pairs(o);
  // Read and check everything of this shard before writing anything.
  std::vector<size_t> global_index;
  std::vector<cv::Mat> masks, images;
  std::vector<PixelSize> calibrations;
  MeasureBatchResult result;
  for (size_t i = 0; i < all_pairs.size(); ++i) {
    if (!o.shard.owns(i)) continue;
    const auto& [m, img] = all_pairs[i];
    calibrations.push_back(resolve_pixel_size(img.empty() ? m : img, explicit_nm, warn));
    cv::Mat mask = io::read_mask(m, o.mask_read);
    NEPHRO_CHECK(cv::countNonZero(mask) > 0, "mask '", m, "' is empty (no foreground pixel)");
    cv::Mat image;
    if (!img.empty()) {
      image = io::read_image_rgb(img);
      NEPHRO_CHECK(image.size() == mask.size(), "image '", img, "' is ", image.cols, "x", image.rows,
                   " but mask '", m, "' is ", mask.cols, "x", mask.rows);
    }
    global_index.push_back(i);
    result.names.push_back(io::file_stem(m));
    masks.push_back(mask);
    images.push_back(image);
  }
  for (size_t i = 0; i < masks.size(); ++i) {
    ThicknessOptions options = o.thickness;
    options.nm_per_pixel = calibrations[i].nm_per_pixel;
    result.results.push_back(measure_thickness(masks[i], options));
    result.calibration_sources.push_back(calibrations[i].source);
    Event e = item_event(Event::Kind::kItemFinished, i, masks.size(), result.names[i],
                         result_line(result.names[i], result.results.back(), o.range));
    e.detail = static_cast<const ThicknessResult*>(&result.results.back());
    emit(events, e);
  }
  fs::create_directories(out_dir);
  remove_stale_temporaries(out_dir);
  BatchRecord record("measure", o.shard, all_pairs.size(), settings_json(o));
  record.write(out_dir, /*complete=*/false);
  for (size_t i = 0; i < masks.size(); ++i) {
    ThicknessOptions options = o.thickness;
    options.nm_per_pixel = calibrations[i].nm_per_pixel;
    const CalibrationRecord cal = calibration_record(calibrations[i]);
    const auto files = write_thickness_report(out_dir, result.names[i], images[i], masks[i],
                                              result.results[i], o.range, options, &cal);
    result.files_written += files.size();
    record.add({global_index[i], result.names[i], ItemStatus::kOk, "",
                summary_numbers(result.results[i], calibrations[i].source)});
  }
  const auto summary =
      write_thickness_batch_summary(out_dir, result.names, result.results, o.range,
                                    result.calibration_sources, "summary" + o.shard.suffix());
  result.summary_csv = summary.at(0);
  result.files_written += summary.size() + 1;
  result.run_json = record.write(out_dir, /*complete=*/true);
  return result;
}

MeasureMergeResult merge_measure_shards(const std::string& out_dir) {
  const MergedBatch merged = read_batch_shards(out_dir, "measure");
  const ReferenceRange range = range_from_key(merged.settings.value("range", nlohmann::json()));
  std::vector<std::string> names, sources;
  std::vector<ThicknessResult> results;
  for (const auto& it : merged.items) {
    names.push_back(it.name);
    results.push_back(summary_from_numbers(it.data));
    sources.push_back(it.data.value("calibration_source", std::string()));
  }
  MeasureMergeResult r;
  r.shards = merged.shards;
  r.inputs = merged.items.size();
  r.summary_csv = write_thickness_batch_summary(out_dir, names, results, range, sources, "summary").at(0);
  // run.json as one process writes it.
  Shard whole;
  BatchRecord record("measure", whole, merged.items.size(), merged.settings);
  for (const auto& it : merged.items) record.add(it);
  r.run_json = record.write(out_dir, /*complete=*/true);
  return r;
}

}  // namespace nephroseg::workloads
