// merge_gbmseg_shards: the summary.csv and run.json of a sharded GBMSeg run (see
// nephroseg/workloads/gbmseg.h).
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "nephroseg/core/atomic_file.h"
#include "nephroseg/core/batch_record.h"
#include "nephroseg/core/error.h"
#include "nephroseg/gbmseg/pipeline.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/workloads/gbmseg.h"

namespace fs = std::filesystem;

namespace nephroseg::workloads {
namespace {

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  NEPHRO_CHECK(in.good(), "cannot read '", path, "'");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  NEPHRO_CHECK(j.is_object(), "'", path, "' is not a JSON object (a damaged shard record)");
  return j;
}

double cell_number(const std::string& s) { return s.empty() ? NAN : std::strtod(s.c_str(), nullptr); }
int cell_int(const std::string& s) { return s.empty() ? -1 : std::atoi(s.c_str()); }

// The keys of run.json that every shard must agree on (the settings of the run).
const char* const kSettings[] = {"reference",    "references",        "preset", "ablation", "options",
                                 "inputs_total", "with_ground_truth", "measure"};

}  // namespace

std::vector<GbmSegTargetRecord> read_gbmseg_summary(const std::string& csv, const std::string& out_dir,
                                                    bool with_thickness) {
  const std::vector<io::CsvRow> rows = io::read_csv(csv);
  NEPHRO_CHECK(!rows.empty(), "'", csv, "' is empty");
  std::map<std::string, size_t> col;
  for (size_t i = 0; i < rows[0].size(); ++i) col[rows[0][i]] = i;
  auto cell = [&](const io::CsvRow& r, const char* name) -> std::string {
    auto it = col.find(name);
    return it == col.end() || it->second >= r.size() ? std::string() : r[it->second];
  };
  std::vector<GbmSegTargetRecord> records;
  for (size_t i = 1; i < rows.size(); ++i) {
    const io::CsvRow& r = rows[i];
    if (cell(r, "status") == "mean") continue;
    GbmSegTargetRecord rec;
    rec.name = cell(r, "name");
    rec.path = cell(r, "target");
    rec.status = item_status_names().parse(cell(r, "status"), "a GBMSeg summary's status");
    rec.message = cell(r, "message");
    rec.width = std::atoi(cell(r, "width").c_str());
    rec.height = std::atoi(cell(r, "height").c_str());
    rec.n_pos = cell_int(cell(r, "n_pos"));
    rec.n_neg = cell_int(cell(r, "n_neg"));
    rec.n_warnings = cell_int(cell(r, "n_warnings"));
    rec.t_features = cell_number(cell(r, "features_s"));
    rec.t_prompts = cell_number(cell(r, "prompts_s"));
    rec.t_segment = cell_number(cell(r, "segment_s"));
    rec.t_total = cell_number(cell(r, "total_s"));
    rec.ground_truth = cell(r, "ground_truth");
    if (with_thickness && rec.status != ItemStatus::kFailed) {
      // The exact numbers are in the target's record (the CSV cells are rounded text).
      std::ifstream in((fs::path(out_dir) / (rec.name + ".prompts.json")).string());
      rec.thickness = gbmseg_thickness_from_json(nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false));
    }
    if (!cell(r, "dice").empty()) {
      eval::MaskMetrics m;
      m.dice = cell_number(cell(r, "dice"));
      m.iou = cell_number(cell(r, "iou"));
      m.precision = cell_number(cell(r, "precision"));
      m.recall = cell_number(cell(r, "recall"));
      rec.metrics = m;
      // The masks the metrics compared, for the authors' weighted Dice of the mean row.
      rec.truth_mask = io::read_mask(rec.ground_truth);
      cv::Mat written = io::read_mask((fs::path(out_dir) / (rec.name + ".png")).string());
      if (written.size() != rec.truth_mask.size())
        written = gbmseg::resize_mask(written, rec.truth_mask.cols, rec.truth_mask.rows,
                                      gbmseg::MaskResize::kNearest);
      rec.compared_mask = written;
    }
    records.push_back(std::move(rec));
  }
  return records;
}

GbmSegMergeResult merge_gbmseg_shards(const std::string& out_dir) {
  // --- the shard records (core/batch_record.h checks they are one complete set) -----------
  int count = 0;
  const std::map<int, std::string> runs = shard_record_files(out_dir, &count);

  GbmSegMergeResult result;
  result.shards = count;
  nlohmann::json first;
  std::vector<std::pair<size_t, GbmSegTargetRecord>> indexed;
  bool with_gt = false, with_thickness = false;
  double reference_s = 0, load_s = 0;
  nlohmann::json shard_timings = nlohmann::json::array();
  for (const auto& [k, path] : runs) {
    const nlohmann::json run = read_json_file(path);
    NEPHRO_CHECK(run.value("complete", false), "merge: shard ", k, " of ", count, " did not complete ('",
                 path, "'); rerun it, then merge");
    if (first.is_null()) {
      first = run;
    } else {
      for (const char* key : kSettings)
        NEPHRO_CHECK(run.value(key, nlohmann::json()) == first.value(key, nlohmann::json()), "merge: shard ",
                     k, " was run with another '", key, "' than shard ", runs.begin()->first,
                     " (mixed runs in one folder)");
    }
    with_gt = run.value("with_ground_truth", false);
    const nlohmann::json measure = run.value("measure", nlohmann::json::object());
    with_thickness = measure.is_object() && measure.value("thickness_columns", false);
    if (!run.contains("backends") || !first.contains("backends")) {
      if (run.contains("backends")) first["backends"] = run["backends"];
    }
    reference_s += run.value("reference_features_s", 0.0);
    load_s += run.value("model_load_s", 0.0);
    shard_timings.push_back(
        {{"shard", k},
         {"model_load_s", run.value("model_load_s", 0.0)},
         {"reference_features_s", run.value("reference_features_s", 0.0)},
         {"reference_features_from_cache", run.value("reference_features_from_cache", false)}});
    // Its summary rows, by name.
    const std::string csv =
        (fs::path(out_dir) / ("summary.shard-" + std::to_string(k) + "-of-" + std::to_string(count) + ".csv"))
            .string();
    NEPHRO_CHECK(fs::is_regular_file(csv), "merge: shard ", k, " has no '", csv, "'");
    std::map<std::string, GbmSegTargetRecord> by_name;
    for (auto& rec : read_gbmseg_summary(csv, out_dir, with_thickness)) by_name[rec.name] = std::move(rec);
    for (const auto& item : run.at("items")) {
      const std::string name = item.at("name");
      auto it = by_name.find(name);
      NEPHRO_CHECK(it != by_name.end(), "merge: '", csv, "' has no row for '", name, "'");
      GbmSegTargetRecord rec = std::move(it->second);
      if (rec.status == ItemStatus::kOk) ++result.segmented;
      if (rec.status == ItemStatus::kSkipped) ++result.skipped;
      if (rec.status == ItemStatus::kFailed) {
        ++result.failed;
        result.failed_names.push_back(name + ": " + rec.message);
      }
      indexed.emplace_back(item.at("index").get<size_t>(), std::move(rec));
    }
  }
  // --- every input in exactly one shard -----------------------------------------------------
  const size_t total = first.value("inputs_total", size_t{0});
  std::sort(indexed.begin(), indexed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  NEPHRO_CHECK(indexed.size() == total, "merge: the shards hold ", indexed.size(), " inputs but the run has ",
               total);
  for (size_t i = 0; i < indexed.size(); ++i)
    NEPHRO_CHECK(indexed[i].first == i, "merge: input ", i, " is in no shard (or in two)");
  result.inputs = total;

  std::vector<GbmSegTargetRecord> records;
  for (auto& p : indexed) records.push_back(std::move(p.second));
  result.summary_csv = (fs::path(out_dir) / "summary.csv").string();
  result.means = write_gbmseg_summary(result.summary_csv, records, with_gt, with_thickness);
  if (with_thickness) {
    const std::string id = first["measure"].value("reference_range", measure::default_reference_id());
    result.report_html = write_gbmseg_report(out_dir, records, measure::find_reference_range(id));
  }

  // run.json as one process writes it, plus the shards' own timings.
  nlohmann::json run;
  run["command"] = "gbmseg";
  for (const char* key : {"reference", "references", "measure", "preset", "ablation", "backends", "options"})
    if (first.contains(key)) run[key] = first[key];
  run["reference_features_s"] = reference_s;
  run["model_load_s"] = load_s;
  run["targets"] = total;
  run["segmented"] = result.segmented;
  run["failed"] = result.failed;
  run["shards"] = shard_timings;
  result.run_json = (fs::path(out_dir) / "run.json").string();
  write_file_atomically(result.run_json, run.dump(1) + "\n");
  return result;
}

}  // namespace nephroseg::workloads
