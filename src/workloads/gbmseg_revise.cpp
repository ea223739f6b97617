// A corrected mask for one target of a finished GBMSeg run (workloads/gbmseg.h,
// revise_gbmseg_target): the workbench's "correct, save, measure again".
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "nephroseg/core/atomic_file.h"
#include "nephroseg/core/error.h"
#include "nephroseg/gbmseg/pipeline.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/measure/reference.h"
#include "nephroseg/workloads/gbmseg.h"

namespace fs = std::filesystem;

namespace nephroseg::workloads {
namespace {

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  NEPHRO_CHECK(in.good(), "revise: cannot read '", path.string(), "'");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  NEPHRO_CHECK(j.is_object(), "revise: '", path.string(), "' is not a JSON object");
  return j;
}

/// The measure settings the run used (run.json "measure").
struct RunMeasure {
  bool thickness_columns = false;
  measure::ReferenceRange range = measure::find_reference_range(measure::default_reference_id());
};

RunMeasure run_measure(const fs::path& dir) {
  RunMeasure m;
  const fs::path run = dir / "run.json";
  NEPHRO_CHECK(fs::is_regular_file(run), "revise: '", dir.string(),
               "' has no run.json: not a finished GBMSeg run (a sharded run is merged first)");
  const nlohmann::json j = read_json(run);
  const nlohmann::json measure = j.value("measure", nlohmann::json::object());
  if (measure.is_object()) {
    m.thickness_columns = measure.value("thickness_columns", false);
    const nlohmann::json id = measure.value("reference_range", nlohmann::json());
    if (id.is_string()) m.range = measure::find_reference_range(id.get<std::string>());
  }
  return m;
}

}  // namespace

GbmSegTargetRecord revise_gbmseg_target(const std::string& out_dir, const std::string& name, const cv::Mat& mask) {
  const fs::path dir(out_dir);
  NEPHRO_CHECK(!name.empty() && name.find('/') == std::string::npos && name != "." && name != "..",
               "revise: '", name, "' is not a target name");
  const RunMeasure rm = run_measure(dir);
  const fs::path csv = dir / "summary.csv";
  NEPHRO_CHECK(fs::is_regular_file(csv), "revise: '", out_dir, "' has no summary.csv");
  std::vector<GbmSegTargetRecord> records = read_gbmseg_summary(csv.string(), out_dir, rm.thickness_columns);
  auto it = std::find_if(records.begin(), records.end(), [&](const auto& r) { return r.name == name; });
  NEPHRO_CHECK(it != records.end(), "revise: the run in '", out_dir, "' has no target '", name, "'");
  GbmSegTargetRecord& rec = *it;
  NEPHRO_CHECK(rec.status != ItemStatus::kFailed, "revise: target '", name,
               "' failed in this run; run it again before correcting it");
  const fs::path mask_path = dir / (name + ".png");
  const cv::Mat written = io::read_mask(mask_path.string());
  NEPHRO_CHECK(mask.rows == written.rows && mask.cols == written.cols, "revise: the corrected mask is ",
               mask.cols, "x", mask.rows, " but target '", name, "' has a ", written.cols, "x", written.rows,
               " mask");
  const cv::Mat binary = io::binarize_mask(mask);

  // 1-2: the original kept once, the correction written.
  const fs::path original = dir / (name + ".auto.png");
  if (!fs::exists(original)) io::write_mask_png(original.string(), written);
  io::write_mask_png(mask_path.string(), binary);

  // 3: measured again with the run's pixel size; metrics again.
  const fs::path record_path = dir / (name + ".prompts.json");
  nlohmann::json record = read_json(record_path);
  record["edited"] = true;
  if (rm.thickness_columns && rec.thickness && rec.thickness->nm_per_pixel > 0) {
    GbmSegMeasureOptions mo;
    mo.range = rm.range;
    measure::ThicknessResult tr;
    rec.thickness = measure_gbmseg_mask(binary, rec.thickness->nm_per_pixel, rec.thickness->calibration_source,
                                        mo, &tr);
    const nlohmann::json calibration = record.value("thickness", nlohmann::json::object()).value(
        "calibration", nlohmann::json());
    record["thickness"] = gbmseg_thickness_to_json(*rec.thickness, rm.range);
    if (!calibration.is_null()) record["thickness"]["calibration"] = calibration;
    const fs::path picture = dir / (name + ".thickness.png");
    if (rec.thickness->note.empty()) {
      const cv::Mat rgb = io::read_image_rgb(rec.path);
      NEPHRO_CHECK(rgb.size() == binary.size(), "revise: target image '", rec.path, "' is ", rgb.cols, "x",
                   rgb.rows, ", its mask ", binary.cols, "x", binary.rows);
      cv::Mat overlay = io::read_image_rgb((dir / (name + ".overlay.png")).string());
      if (overlay.size() != binary.size()) cv::resize(overlay, overlay, binary.size(), 0, 0, cv::INTER_LINEAR);
      io::write_png(picture.string(), gbmseg_thickness_picture(overlay, rgb, binary, tr, rm.range));
      record["thickness"]["map"] = name + ".thickness.png";
    } else {
      std::error_code ec;
      fs::remove(picture, ec);
    }
  }
  if (!rec.ground_truth.empty()) {
    rec.truth_mask = io::read_mask(rec.ground_truth);
    rec.compared_mask = binary.size() == rec.truth_mask.size()
                            ? binary
                            : gbmseg::resize_mask(binary, rec.truth_mask.cols, rec.truth_mask.rows,
                                                  gbmseg::MaskResize::kNearest);
    rec.metrics = eval::compute_metrics(rec.compared_mask, rec.truth_mask);
  }
  write_file_atomically(record_path.string(), record.dump(1) + "\n");

  // 4: the run's summary and report.
  bool with_gt = false;
  for (const auto& r : records) with_gt = with_gt || !r.ground_truth.empty();
  write_gbmseg_summary(csv.string(), records, with_gt, rm.thickness_columns);
  if (rm.thickness_columns) write_gbmseg_report(out_dir, records, rm.range);
  return rec;
}

}  // namespace nephroseg::workloads
