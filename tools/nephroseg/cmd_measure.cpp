// `nephroseg measure`: GBM thickness in nanometres from membrane masks.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <opencv2/core.hpp>

#include "command.h"
#include "options.h"
#include "nephroseg/core/atomic_file.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/io/calibration.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/measure/reference.h"
#include "nephroseg/measure/report.h"
#include "nephroseg/measure/thickness.h"

#include <nlohmann/json.hpp>

namespace fs = std::filesystem;

namespace nephroseg::cli {
namespace {

struct MeasureParams {
  std::string mask, image, out, reference = measure::default_reference_id(), ref_method = "direct";
  std::string nm_per_pixel = "auto";
  double ref_low = std::numeric_limits<double>::quiet_NaN(), ref_high = std::numeric_limits<double>::quiet_NaN();
  int mask_channel = -1;
  double mask_threshold = 127;
  bool list_references = false;
  measure::ThicknessOptions thickness;
};

// The pixel size of one image and where it came from.
struct ImageCalibration {
  double nm_per_pixel = 0;
  std::string source;       // "option" or the file's calibration source ("dm", "ome-xml", ...)
  std::string file;         // the file whose calibration was read
  io::Calibration in_file;  // what that file says
};

// A strict number: the whole text, finite, > 0; 0 otherwise.
double parse_nm_per_pixel(const std::string& text) {
  if (text.empty()) return 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(v) || v <= 0) return 0;
  return v;
}

// --nm-per-pixel auto: the file's calibration (an error when there is none); an
// explicit value wins, with a warning when the file disagrees by more than 1 %.
ImageCalibration resolve_calibration(const std::string& file, bool automatic, double explicit_nm) {
  ImageCalibration c;
  c.file = file;
  c.in_file = io::read_calibration(file);
  if (!automatic) {
    c.nm_per_pixel = explicit_nm;
    c.source = "option";
    if (c.in_file.known()) {
      const double file_nm = 0.5 * (c.in_file.nm_per_pixel_x + c.in_file.nm_per_pixel_y);
      if (std::abs(explicit_nm - file_nm) > 0.01 * file_nm)
        log_warn("--nm-per-pixel ", explicit_nm, " disagrees with the calibration of '", file, "' (", file_nm,
                 " nm per pixel from ", io::calibration_source_names().name(c.in_file.source), "); using ",
                 explicit_nm);
    }
    return c;
  }
  NEPHRO_CHECK(c.in_file.known() || c.in_file.reciprocal, "no pixel size for '", file,
               "': the file carries no calibration (DM, OME-XML, ImageJ or TIFF resolution tags); give "
               "--nm-per-pixel <nm>");
  c.nm_per_pixel = io::require_nm_per_pixel(c.in_file, file);
  c.source = io::calibration_source_names().name(c.in_file.source);
  return c;
}

// Adds where the pixel size came from to the files measure::write_* wrote (new fields
// only; nothing renamed): <name>_summary.json, summary.json and summary.csv.
void record_calibrations(const std::string& out, const std::vector<std::string>& names,
                         const std::vector<ImageCalibration>& cals) {
  auto read_json = [](const std::string& path) {
    std::ifstream in(path);
    return nlohmann::json::parse(in);
  };
  auto file_nm = [](const io::Calibration& c) {
    return c.known() ? nlohmann::json(0.5 * (c.nm_per_pixel_x + c.nm_per_pixel_y)) : nlohmann::json(nullptr);
  };
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string path = (fs::path(out) / (names[i] + "_summary.json")).string();
    nlohmann::json j = read_json(path);
    j["calibration"] = {{"source", cals[i].source},
                        {"file", cals[i].file},
                        {"file_source", io::calibration_source_names().name(cals[i].in_file.source)},
                        {"file_nm_per_pixel", file_nm(cals[i].in_file)},
                        {"file_unit", cals[i].in_file.unit}};
    write_file_atomically(path, j.dump(2) + "\n");
  }
  const std::string json_path = (fs::path(out) / "summary.json").string();
  nlohmann::json batch = read_json(json_path);
  for (size_t i = 0; i < names.size() && i < batch["images"].size(); ++i)
    batch["images"][i]["calibration_source"] = cals[i].source;
  write_file_atomically(json_path, batch.dump(2) + "\n");
  const std::string csv_path = (fs::path(out) / "summary.csv").string();
  std::vector<io::CsvRow> rows = io::read_csv(csv_path);
  NEPHRO_CHECK(rows.size() == names.size() + 1, "internal: '", csv_path, "' has ", rows.size(), " rows");
  io::CsvRow header = rows[0];
  header.push_back("calibration_source");
  std::vector<io::CsvRow> body(rows.begin() + 1, rows.end());
  for (size_t i = 0; i < body.size(); ++i) body[i].push_back(cals[i].source);
  io::write_csv(csv_path, header, body);
}

int run_measure(MeasureParams& p) {
  if (p.list_references) {
    for (const auto& r : measure::reference_ranges())
      std::cout << r.id << "\t" << (std::isnan(r.low_nm) ? std::string("-") : std::to_string(int(r.low_nm))) << " .. "
                << (std::isnan(r.high_nm) ? std::string("-") : std::to_string(int(r.high_nm))) << " nm\t"
                << measure::estimator_name(r.method) << "\t" << r.population << "\t" << r.source << "\n";
    return 0;
  }
  const bool auto_calibration = p.nm_per_pixel == "auto";
  double explicit_nm = 0;
  if (!auto_calibration) {
    explicit_nm = parse_nm_per_pixel(p.nm_per_pixel);
    NEPHRO_CHECK(explicit_nm > 0, "--nm-per-pixel must be 'auto' or a positive, finite number of nm per pixel (got '",
                 p.nm_per_pixel, "')");
  }
  measure::ReferenceRange range;
  if (!std::isnan(p.ref_low) || !std::isnan(p.ref_high)) {
    NEPHRO_CHECK(p.ref_method == "oi" || p.ref_method == "direct", "--ref-method must be 'oi' or 'direct'");
    range = measure::custom_reference_range(
        p.ref_low, p.ref_high, p.ref_method == "oi" ? measure::Estimator::kOrthogonalIntercept : measure::Estimator::kDirect);
  } else {
    range = measure::find_reference_range(p.reference);
  }

  // Pair masks with images, then read and check everything before writing anything.
  std::vector<std::pair<std::string, std::string>> pairs;  // mask, image
  if (fs::is_directory(p.mask)) {
    const auto masks = io::list_image_files(p.mask);
    NEPHRO_CHECK(!masks.empty(), "no mask files (.png .jpg .tif) in '", p.mask, "'");
    std::map<std::string, std::string> images;
    if (!p.image.empty()) {
      NEPHRO_CHECK(fs::is_directory(p.image), "--image must be a folder when --mask is a folder ('", p.image, "')");
      for (const auto& f : io::list_image_files(p.image)) images[io::file_stem(f)] = f;
    }
    for (const auto& m : masks) {
      std::string img;
      if (!p.image.empty()) {
        auto it = images.find(io::file_stem(m));
        NEPHRO_CHECK(it != images.end(), "no image named '", io::file_stem(m), ".*' in '", p.image, "' for mask '", m,
                     "'");
        img = it->second;
      }
      pairs.emplace_back(m, img);
    }
  } else {
    NEPHRO_CHECK(fs::is_regular_file(p.mask), "mask '", p.mask, "' does not exist");
    NEPHRO_CHECK(p.image.empty() || fs::is_regular_file(p.image), "image '", p.image, "' does not exist");
    pairs.emplace_back(p.mask, p.image);
  }
  io::MaskReadOptions mopt;
  mopt.channel = p.mask_channel;
  mopt.threshold = p.mask_threshold;
  std::vector<std::string> names;
  std::vector<cv::Mat> masks, images;
  std::vector<ImageCalibration> calibrations;
  for (const auto& [m, img] : pairs) {
    calibrations.push_back(resolve_calibration(img.empty() ? m : img, auto_calibration, explicit_nm));
    cv::Mat mask = io::read_mask(m, mopt);
    NEPHRO_CHECK(cv::countNonZero(mask) > 0, "mask '", m, "' is empty (no foreground pixel)");
    cv::Mat image;
    if (!img.empty()) {
      image = io::read_image_rgb(img);
      NEPHRO_CHECK(image.size() == mask.size(), "image '", img, "' is ", image.cols, "x", image.rows, " but mask '", m,
                   "' is ", mask.cols, "x", mask.rows);
    }
    names.push_back(io::file_stem(m));
    masks.push_back(mask);
    images.push_back(image);
  }
  std::vector<measure::ThicknessResult> results;
  for (size_t i = 0; i < masks.size(); ++i) {
    measure::ThicknessOptions options = p.thickness;
    options.nm_per_pixel = calibrations[i].nm_per_pixel;
    results.push_back(measure::measure_thickness(masks[i], options));
    const auto& r = results.back();
    const double k = r.nm_per_pixel, value = measure::reference_value_nm(r, range);
    char line[300];
    std::snprintf(line, sizeof line,
                  "%s: OI harmonic mean %.1f nm (x8/3pi: %.1f nm; n=%d, excluded %d) | direct mean %.1f nm, median "
                  "%.1f nm (n=%d) | %s vs '%s'",
                  names[i].c_str(), r.oi.harmonic_mean * k, r.oi_stereological_harmonic_px * k, r.oi.n,
                  r.oi.n_excluded, r.direct.mean * k, r.direct.median * k, r.direct.n,
                  measure::classify_thickness(value, range).c_str(), range.id.c_str());
    log_info(line);
  }
  for (size_t i = 0; i < masks.size(); ++i)
    measure::write_thickness_report(p.out, names[i], images[i], masks[i], results[i], range, p.thickness);
  measure::write_thickness_batch_summary(p.out, names, results, range);
  record_calibrations(p.out, names, calibrations);
  log_info("wrote ", names.size() * 4 + 2, " files to ", p.out);
  return 0;
}

Runner setup_measure(CLI::App& app) {
  auto p = std::make_shared<MeasureParams>();
  app.add_option("--mask", p->mask, "GBM mask file or folder (non-zero = membrane)")->required();
  app.add_option("--image", p->image, "image file or folder (same names) for the overlay");
  app.add_option("--nm-per-pixel", p->nm_per_pixel,
                 "calibration in nm per pixel, or 'auto': the file's own (--image if given, else --mask; DM, "
                 "OME-XML, ImageJ or TIFF resolution)")
      ->capture_default_str();
  add_out_option(app, p->out);
  app.add_option("--reference", p->reference, "reference range id (see --list-references)")->capture_default_str();
  app.add_option("--ref-low-nm", p->ref_low, "custom reference range: lower bound in nm");
  app.add_option("--ref-high-nm", p->ref_high, "custom reference range: upper bound in nm");
  app.add_option("--ref-method", p->ref_method, "custom range compares with: oi (stereological) | direct")
      ->capture_default_str();
  app.add_flag("--list-references", p->list_references, "print the reference range presets and exit");
  app.add_option("--spacing-px", p->thickness.sample_spacing_px, "OI sample spacing along the boundary (px)")
      ->capture_default_str();
  app.add_option("--tangential-factor", p->thickness.tangential_factor,
                 "exclude widths above this factor x the local median")
      ->capture_default_str();
  app.add_option("--smoothing-sigma", p->thickness.smoothing_sigma_px, "Gaussian sigma for the sub-pixel boundary (px)")
      ->capture_default_str();
  app.add_option("--max-angle", p->thickness.max_angle_deg, "OI ray cone half-angle (degrees)")->capture_default_str();
  app.add_option("--seed", p->thickness.seed, "systematic sampling start")->capture_default_str();
  app.add_option("--mask-channel", p->mask_channel, "-1: any channel non-zero; else this channel > threshold")
      ->capture_default_str();
  app.add_option("--mask-threshold", p->mask_threshold, "threshold with --mask-channel")->capture_default_str();
  return [p] { return run_measure(*p); };
}

}  // namespace

NEPHRO_COMMAND("", "measure", "GBM thickness (nm): orthogonal intercepts and medial-axis widths", setup_measure);

}  // namespace nephroseg::cli
