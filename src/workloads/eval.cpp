// run_eval_batch / merge_eval_shards (see nephroseg/workloads/eval.h).
#include <algorithm>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <limits>

#include "nephroseg/core/atomic_file.h"
#include "nephroseg/core/batch_record.h"
#include "nephroseg/core/error.h"
#include "nephroseg/eval/report.h"
#include "nephroseg/workloads/eval.h"

namespace fs = std::filesystem;

namespace nephroseg::workloads {

using eval::EvalItem;
using eval::EvalOptions;
using eval::EvalRun;
using eval::MaskMetrics;

namespace {

nlohmann::json mask_options_json(const io::MaskReadOptions& m) {
  return {{"channel", m.channel}, {"threshold", m.threshold}, {"page", m.page}};
}
io::MaskReadOptions mask_options_from(const nlohmann::json& j) {
  io::MaskReadOptions m;
  m.channel = j.value("channel", m.channel);
  m.threshold = j.value("threshold", m.threshold);
  m.page = j.value("page", m.page);
  return m;
}

nlohmann::json settings_json(const std::string& pred, const std::string& truth, const EvalOptions& o) {
  return {{"pred", pred},
          {"truth", truth},
          {"images", o.image_dir},
          {"pred_mask", mask_options_json(o.pred_mask)},
          {"truth_mask", mask_options_json(o.truth_mask)},
          {"boundary_dilation_ratio", o.metrics.boundary_dilation_ratio},
          {"panel_size", o.panel_size},
          {"title", o.title}};
}

EvalOptions options_from(const nlohmann::json& s) {
  NEPHRO_CHECK(s.is_object(), "merge: the eval records hold no settings");
  EvalOptions o;
  o.image_dir = s.value("images", std::string());
  o.pred_mask = mask_options_from(s.value("pred_mask", nlohmann::json::object()));
  o.truth_mask = mask_options_from(s.value("truth_mask", nlohmann::json::object()));
  o.metrics.boundary_dilation_ratio = s.value("boundary_dilation_ratio", o.metrics.boundary_dilation_ratio);
  o.panel_size = s.value("panel_size", o.panel_size);
  o.title = s.value("title", o.title);
  return o;
}

nlohmann::json item_data(const EvalItem& it) {
  nlohmann::json d = {{"pred", it.pred_path}, {"truth", it.truth_path}, {"image", it.image_path}};
  if (it.ok) {
    const MaskMetrics& m = it.metrics;
    d["metrics"] = {{"dice", record_number(m.dice)},
                    {"iou", record_number(m.iou)},
                    {"precision", record_number(m.precision)},
                    {"recall", record_number(m.recall)},
                    {"accuracy", record_number(m.accuracy)},
                    {"hd95", record_number(m.hd95)},
                    {"boundary_iou", record_number(m.boundary_iou)},
                    {"tp", m.tp},
                    {"fp", m.fp},
                    {"fn", m.fn},
                    {"tn", m.tn}};
  }
  return d;
}

BatchItemRecord to_record(const EvalItem& it) {
  return {it.index, it.name, it.ok ? ItemStatus::kOk : ItemStatus::kFailed, it.ok ? "" : it.status,
          item_data(it)};
}

EvalItem from_record(const BatchItemRecord& r, const EvalOptions& o) {
  EvalItem it;
  it.name = r.name;
  it.index = r.index;
  it.pred_path = r.data.value("pred", std::string());
  it.truth_path = r.data.value("truth", std::string());
  it.image_path = r.data.value("image", std::string());
  it.ok = r.status == ItemStatus::kOk;
  it.status = it.ok ? "ok" : r.message;
  if (it.ok) {
    const nlohmann::json m = r.data.value("metrics", nlohmann::json());
    NEPHRO_CHECK(m.is_object(), "merge: the eval record of '", r.name, "' holds no metrics");
    it.metrics.dice = record_number_of(m, "dice");
    it.metrics.iou = record_number_of(m, "iou");
    it.metrics.precision = record_number_of(m, "precision");
    it.metrics.recall = record_number_of(m, "recall");
    it.metrics.accuracy = record_number_of(m, "accuracy");
    it.metrics.hd95 = record_number_of(m, "hd95");
    it.metrics.boundary_iou = record_number_of(m, "boundary_iou");
    it.metrics.tp = m.value("tp", int64_t{0});
    it.metrics.fp = m.value("fp", int64_t{0});
    it.metrics.fn = m.value("fn", int64_t{0});
    it.metrics.tn = m.value("tn", int64_t{0});
    it.panels = eval::render_panels(it, o);
  }
  return it;
}

}  // namespace

EvalRun run_eval_batch(const EvalBatchOptions& o, const EventSink& events) {
  EvalRun run = eval::evaluate_folders(o.pred_dir, o.truth_dir, o.options, o.shard);
  for (size_t i = 0; i < run.items.size(); ++i) {
    const EvalItem& it = run.items[i];
    Event e = item_event(Event::Kind::kItemFinished, i, run.items.size(), it.name,
                         it.ok ? "" : it.name + ": " + it.status);
    e.status = it.ok ? ItemStatus::kOk : ItemStatus::kFailed;
    e.detail = &it;
    emit(events, e);
  }
  // A whole run in which no image could be evaluated is an error, not an empty report
  // (a shard's failures are recorded for the merge).
  if (o.shard.whole() && !run.items.empty()) {
    const auto ok =
        std::find_if(run.items.begin(), run.items.end(), [](const EvalItem& it) { return it.ok; });
    NEPHRO_CHECK(ok != run.items.end(), "eval: none of the ", run.items.size(),
                 " image(s) could be evaluated ('", run.items.front().name, "': ", run.items.front().status,
                 ")");
  }
  fs::create_directories(o.out_dir);
  remove_stale_temporaries(o.out_dir);
  if (o.shard.whole()) eval::write_eval_report(o.out_dir, run, o.options);
  BatchRecord record("eval", o.shard, run.inputs_total, settings_json(o.pred_dir, o.truth_dir, o.options));
  for (const auto& it : run.items) record.add(to_record(it));
  record.write(o.out_dir, /*complete=*/true);
  return run;
}

EvalRun merge_eval_shards(const std::string& out_dir) {
  const MergedBatch merged = read_batch_shards(out_dir, "eval");
  const EvalOptions options = options_from(merged.settings);
  EvalRun run;
  run.inputs_total = merged.items.size();
  for (const auto& r : merged.items) run.items.push_back(from_record(r, options));
  eval::summarize_run(run);
  eval::write_eval_report(out_dir, run, options);
  BatchRecord record("eval", Shard{}, run.inputs_total, merged.settings);
  for (const auto& r : merged.items) record.add(r);
  record.write(out_dir, /*complete=*/true);
  return run;
}

}  // namespace nephroseg::workloads
