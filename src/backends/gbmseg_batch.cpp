// The GBMSeg batch runner (see nephroseg/backends/gbmseg_batch.h).
#include "nephroseg/backends/gbmseg_batch.h"

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "nephroseg/backends/register.h"
#include "nephroseg/core/atomic_file.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/file_hash.h"
#include "nephroseg/gbmseg/dice.h"
#include "nephroseg/gbmseg/prompts_json.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/io/npy.h"
#include "nephroseg/io/overlay.h"

namespace fs = std::filesystem;

namespace nephroseg::backends {

namespace {

using Clock = std::chrono::steady_clock;
using Event = GbmSegBatchEvent;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string out_path(const GbmSegBatchOptions& o, const std::string& name, const std::string& suffix) {
  return (fs::path(o.out_dir) / (name + suffix)).string();
}

bool outputs_exist(const GbmSegBatchOptions& o, const std::string& name) {
  for (const char* suffix : {".png", ".prompts.json", ".overlay.png"})
    if (!fs::is_regular_file(out_path(o, name, suffix))) return false;
  return true;
}

// Collects the warnings and passes every event on.
struct Reporter {
  const GbmSegBatchCallback& callback;
  GbmSegBatchResult& result;
  void emit(const Event& e) const {
    if (callback) callback(e);
  }
  void warn(const std::string& message) const {
    result.warnings.push_back(message);
    Event e;
    e.kind = Event::Kind::kWarning;
    e.message = message;
    emit(e);
  }
};

bool known(const std::vector<std::string>& kinds, const std::string& kind) {
  return std::find(kinds.begin(), kinds.end(), kind) != kinds.end();
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

void check_model_spec(const gbmseg::BackendSpec& spec, const char* model_kind, const char* what) {
  if (spec.kind != model_kind || spec.random_weights) return;
  NEPHRO_CHECK(!spec.checkpoint.empty(), what, " '", model_kind, "' needs a checkpoint");
  NEPHRO_CHECK(fs::is_regular_file(spec.checkpoint), what, " checkpoint '", spec.checkpoint, "' does not exist");
}

std::vector<io::InputItem> collect_targets(const GbmSegBatchOptions& o, const Reporter& rep) {
  if (!o.items.empty()) return o.items;
  std::vector<io::InputItem> items = io::list_inputs(o.targets, "target");
  if (o.ground_truth.empty()) return items;
  items = io::pair_by_stem(std::move(items), o.ground_truth, "ground truth", io::Partner::kOptional);
  for (const auto& it : items)
    if (it.partner.empty()) rep.warn(detail::concat("no ground truth for target '", it.name, "' in '", o.ground_truth, "'"));
  return items;
}

// The reference mask keeps its raw values and channels (the authors resize the RGB mask
// with bicubic and test every channel for non-zero); 16-bit / float masks are binarised.
cv::Mat read_reference_mask(const std::string& path, const Reporter& rep) {
  cv::Mat raw = io::read_image_raw(path);
  if (raw.depth() == CV_8U && raw.channels() <= 4) return raw;
  rep.warn(detail::concat("reference mask '", path, "' is not 8-bit with 1-4 channels; binarised (non-zero -> 255) "
                          "before resizing"));
  return io::binarize_mask(raw);
}

// Metrics of the written mask against the ground truth, compared at the truth's size:
// the written mask if the sizes agree, else the working-size mask if that fits, else the
// mask resized to the truth (nearest) with a warning.
void add_metrics(GbmSegTargetRecord& rec, const cv::Mat& written, const cv::Mat& working, const Reporter& rep) {
  if (rec.ground_truth.empty()) return;
  cv::Mat gt = io::read_mask(rec.ground_truth);
  cv::Mat pred = written;
  if (gt.size() != written.size()) {
    if (!working.empty() && gt.size() == working.size()) {
      pred = working;
    } else {
      rep.warn(detail::concat("ground truth '", rec.ground_truth, "' is ", gt.cols, "x", gt.rows, ", the mask ",
                              written.cols, "x", written.rows,
                              "; the mask is resized to the ground truth (nearest) for the metrics"));
      pred = gbmseg::resize_mask(written, gt.cols, gt.rows, gbmseg::MaskResize::kNearest);
    }
  }
  rec.metrics = eval::compute_metrics(pred, gt);
  rec.truth_mask = gt;
  rec.compared_mask = pred;
}

// A finished target: its row is re-read from the files.
void reread_skipped(const GbmSegBatchOptions& o, GbmSegTargetRecord& rec, const Reporter& rep) {
  try {
    const cv::Mat written = io::read_mask(out_path(o, rec.name, ".png"));
    rec.width = written.cols;
    rec.height = written.rows;
    std::ifstream in(out_path(o, rec.name, ".prompts.json"));
    const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("stages")) {
      rec.n_pos = static_cast<int>(j["stages"]["final_pos"].size());
      rec.n_neg = static_cast<int>(j["stages"]["final_neg"].size());
      rec.n_warnings = static_cast<int>(j["warnings"].size());
    }
    add_metrics(rec, written, cv::Mat(), rep);
  } catch (const std::exception& e) {
    rec.message += std::string("; could not re-read: ") + e.what();
  }
}

std::string num(double v) { return std::isnan(v) ? std::string() : io::format_number(v); }
std::string num_int(int v) { return v < 0 ? std::string() : std::to_string(v); }

// The settings reference.features.npy depends on (its sidecar): a shard reuses the
// stored features only when every field agrees.
nlohmann::json reference_cache_key(const GbmSegBatchOptions& o) {
  const gbmseg::BackendSpec& f = o.features;
  nlohmann::json key;
  key["features"] = {{"kind", f.kind},
                     {"checkpoint", f.checkpoint.empty() ? std::string() : fs::path(f.checkpoint).filename().string()},
                     {"checkpoint_fingerprint", f.checkpoint.empty() ? std::string() : file_fingerprint(f.checkpoint)},
                     {"type", f.model_type},
                     {"config_fingerprint", f.config_json.empty()              ? std::string()
                                            : fs::is_regular_file(f.config_json) ? file_fingerprint(f.config_json)
                                                                                 : text_fingerprint(f.config_json)},
                     {"random_weights", f.random_weights},
                     {"seed", static_cast<uint64_t>(f.seed)}};
  if (f.precision != Precision::kFp32) key["features"]["precision"] = precision_names().name(f.precision);
  key["reference_image"] = file_fingerprint(o.reference_image);
  key["reference_mask"] = file_fingerprint(o.reference_mask);
  key["size"] = o.prompts.size;
  key["patch_size"] = o.prompts.patch_size;
  return key;
}

// Sets the pipeline's reference from OUT/reference.features.npy when its sidecar matches,
// else computes it and stores both (atomically: concurrent shards write the same bytes).
bool set_reference_cached(gbmseg::GbmSegPipeline& pipe, const GbmSegBatchOptions& o, const Reporter& rep) {
  const std::string npy = (fs::path(o.out_dir) / "reference.features.npy").string();
  const std::string side = (fs::path(o.out_dir) / "reference.features.json").string();
  const nlohmann::json key = reference_cache_key(o);
  const cv::Mat image = io::read_image_rgb(o.reference_image);
  const cv::Mat mask = read_reference_mask(o.reference_mask, rep);
  if (fs::is_regular_file(npy) && fs::is_regular_file(side)) {
    std::ifstream in(side);
    const nlohmann::json stored = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    NEPHRO_CHECK(stored.is_object() && stored.contains("key"), "'", side, "' is not a reference-features record");
    if (stored["key"] != key) {
      std::string field = "settings";
      for (const auto& item : key.items())
        if (!stored["key"].contains(item.key()) || stored["key"][item.key()] != item.value()) field = item.key();
      NEPHRO_FAIL("'", npy, "' was computed with other settings than this run (", field,
                  " differs): use another --out, or delete it and the finished outputs to redo the batch");
    }
    pipe.set_reference_working(gbmseg::resize_to_working(image, o.prompts.size),
                               gbmseg::resize_to_working(mask, o.prompts.size), io::read_npy(npy));
    return true;
  }
  pipe.set_reference(image, mask);
  io::write_npy(npy, pipe.reference_features());
  nlohmann::json record;
  record["key"] = key;
  record["shape"] = {pipe.reference_features().size(0), pipe.reference_features().size(1)};
  record["features_backend"] = pipe.feature_extractor().name();
  write_file_atomically(side, record.dump(1) + "\n");
  return false;
}

}  // namespace

cv::Mat gbmseg_prompt_overlay(const cv::Mat& target_rgb, const gbmseg::SegmentResult& r, bool working_size) {
  const cv::Mat& base = working_size ? r.image_working : target_rgb;
  cv::Mat overlay = io::overlay_mask(base, r.mask, io::colors::kYellow, /*alpha=*/0.35, /*contour_thickness=*/1);
  io::PromptMarkers markers;
  markers.positive = io::colors::kGreen;
  markers.negative = io::colors::kRed;
  markers.radius = std::max(3, static_cast<int>(std::lround(std::max(r.mask.cols, r.mask.rows) / 110.0)));
  io::draw_prompts(overlay, r.points, r.labels, static_cast<double>(r.mask.cols) / r.mask_working.cols,
                   static_cast<double>(r.mask.rows) / r.mask_working.rows, markers);
  return overlay;
}

std::optional<GbmSegMeans> write_gbmseg_summary(const std::string& path, const std::vector<GbmSegTargetRecord>& recs,
                                                bool with_gt) {
  io::CsvRow header{"name",    "target", "status",     "message",    "width",     "height",    "mask",
                    "n_pos",   "n_neg",  "n_warnings", "features_s", "prompts_s", "segment_s", "total_s"};
  if (with_gt) {
    for (const char* c :
         {"ground_truth", "dice", "iou", "precision", "recall", "dice_authors_weighted_mean", "miou_authors"})
      header.push_back(c);
  }
  std::vector<io::CsvRow> rows;
  GbmSegMeans means;
  std::vector<cv::Mat> gts, preds;
  for (const GbmSegTargetRecord& r : recs) {
    io::CsvRow row{r.name,
                   r.path,
                   r.status,
                   r.message,
                   r.width ? std::to_string(r.width) : "",
                   r.height ? std::to_string(r.height) : "",
                   r.status == "failed" ? "" : r.name + ".png",
                   num_int(r.n_pos),
                   num_int(r.n_neg),
                   num_int(r.n_warnings),
                   num(r.t_features),
                   num(r.t_prompts),
                   num(r.t_segment),
                   num(r.t_total)};
    if (with_gt) {
      row.push_back(r.ground_truth);
      if (r.metrics) {
        const eval::MaskMetrics& m = *r.metrics;
        for (double v : {m.dice, m.iou, m.precision, m.recall}) row.push_back(num(v));
        means.dice += m.dice, means.iou += m.iou, means.precision += m.precision, means.recall += m.recall;
        ++means.n;
        gts.push_back(r.truth_mask);
        preds.push_back(r.compared_mask);
      } else {
        for (int k = 0; k < 4; ++k) row.push_back("");
      }
      row.push_back("");
      row.push_back("");
    }
    rows.push_back(row);
  }
  std::optional<GbmSegMeans> out;
  if (with_gt) {
    io::CsvRow mean(header.size());
    mean[0] = "mean";
    mean[2] = "mean";
    mean[3] = detail::concat("over ", means.n, " image(s) with ground truth; textbook means; the authors' weighted "
                             "Dice mean (tools/dice.py) in its own column");
    if (means.n > 0) {
      const gbmseg::DiceSummary authors = gbmseg::evaluate_dice(gts, preds);
      means.dice /= means.n, means.iou /= means.n, means.precision /= means.n, means.recall /= means.n;
      means.dice_authors_weighted = authors.authors_mean;
      means.miou_authors = authors.authors_miou;
      const size_t base = header.size() - 7;
      int k = 0;
      for (double v : {means.dice, means.iou, means.precision, means.recall}) mean[base + 1 + k++] = num(v);
      mean[base + 5] = num(means.dice_authors_weighted);
      mean[base + 6] = num(means.miou_authors);
      out = means;
    }
    rows.push_back(mean);
  }
  io::write_csv(path, header, rows);
  return out;
}

GbmSegBatchResult run_gbmseg_batch(const GbmSegBatchOptions& o, const GbmSegBatchCallback& callback) {
  GbmSegBatchResult result;
  const Reporter rep{callback, result};

  // --- everything cheap is checked before a model is loaded or a file written ----------
  const gbmseg::PromptOptions& prompts = o.prompts;
  NEPHRO_CHECK(prompts.patch_size > 0 && prompts.size > 0 && prompts.size % prompts.patch_size == 0,
               "working size ", prompts.size, " must be a positive multiple of the patch size ", prompts.patch_size);
  NEPHRO_CHECK(fs::is_regular_file(o.reference_image), "reference image '", o.reference_image, "' does not exist");
  NEPHRO_CHECK(fs::is_regular_file(o.reference_mask), "reference mask '", o.reference_mask, "' does not exist");
  register_builtin_backends();
  if (!o.features_backend) {
    NEPHRO_CHECK(known(gbmseg::feature_extractor_kinds(), o.features.kind), "features backend '", o.features.kind,
                 "' is not available in this build (known: ", join(gbmseg::feature_extractor_kinds()), ")");
    check_model_spec(o.features, "dinov2", "features backend");
  }
  if (!o.segmenter_backend) {
    NEPHRO_CHECK(known(gbmseg::point_segmenter_kinds(), o.segmenter.kind), "segmenter backend '", o.segmenter.kind,
                 "' is not available in this build (known: ", join(gbmseg::point_segmenter_kinds()), ")");
    check_model_spec(o.segmenter, "sam", "segmenter backend");
  }
  const std::vector<io::InputItem> all_targets = collect_targets(o, rep);
  std::vector<io::InputItem> targets;
  std::vector<size_t> global_index;  // position of each of this shard's targets in all_targets
  for (size_t i = 0; i < all_targets.size(); ++i) {
    if (!o.shard.owns(i)) continue;
    targets.push_back(all_targets[i]);
    global_index.push_back(i);
  }
  result.inputs_total = all_targets.size();
  NEPHRO_CHECK(!o.out_dir.empty(), "no output folder given");
  NEPHRO_CHECK(!fs::exists(o.out_dir) || fs::is_directory(o.out_dir), "output folder '", o.out_dir,
               "' exists and is not a folder");
  fs::create_directories(o.out_dir);
  // Temporaries left by a run killed with SIGKILL (live writers' files are kept).
  if (const size_t n = remove_stale_temporaries(o.out_dir))
    rep.warn(detail::concat("removed ", n, " temporary file(s) left in '", o.out_dir, "' by an interrupted run"));

  result.with_ground_truth = !o.ground_truth.empty() ||
                             std::any_of(all_targets.begin(), all_targets.end(), [](const auto& t) {
                               return !t.partner.empty();
                             });
  std::vector<size_t> todo;
  for (const auto& t : targets) {
    GbmSegTargetRecord rec;
    rec.name = t.name;
    rec.path = t.path;
    rec.ground_truth = t.partner;
    if (outputs_exist(o, t.name) && !o.overwrite) {
      rec.status = "skipped";
      rec.message = "outputs exist (use --overwrite to redo)";
    } else {
      todo.push_back(result.targets.size());
    }
    result.targets.push_back(std::move(rec));
  }

  // --- models and reference (only when something is left to do) -----------------------
  nlohmann::json run;
  run["reference"] = {{"image", o.reference_image}, {"mask", o.reference_mask}};
  run["preset"] = gbmseg::prompt_preset_names().name(o.preset);
  run["ablation"] = o.ablation ? nlohmann::json(gbmseg::ablation_row_names().name(*o.ablation)) : nlohmann::json();
  std::optional<gbmseg::GbmSegPipeline> pipe;
  gbmseg::SegmentRecordContext context;
  if (!todo.empty()) {
    const auto t0 = Clock::now();
    auto fx = o.features_backend ? o.features_backend : gbmseg::make_feature_extractor(o.features);
    auto sg = o.segmenter_backend ? o.segmenter_backend : gbmseg::make_point_segmenter(o.segmenter);
    result.model_load_s = seconds_since(t0);
    result.features_name = fx->name();
    result.segmenter_name = sg->name();
    pipe.emplace(fx, sg, prompts, o.pipeline);
    if (!o.shard.whole() && !o.features_backend) {
      result.reference_from_cache = set_reference_cached(*pipe, o, rep);
    } else {
      pipe->set_reference(io::read_image_rgb(o.reference_image), read_reference_mask(o.reference_mask, rep));
    }
    result.reference_features_s = pipe->reference_seconds();
    run["backends"] = {{"features", result.features_name}, {"segmenter", result.segmenter_name}};
    run["reference_features_s"] = result.reference_features_s;
    run["model_load_s"] = result.model_load_s;
    context.reference_image = o.reference_image;
    context.reference_mask = o.reference_mask;
    context.features_name = result.features_name;
    context.segmenter_name = result.segmenter_name;
    context.preset = o.preset;
    context.ablation = o.ablation;
    Event e;
    e.kind = Event::Kind::kModelsReady;
    e.total = targets.size();
    e.to_segment = todo.size();
    e.pipeline = &*pipe;
    rep.emit(e);
  }

  // --- targets -------------------------------------------------------------------------
  for (size_t i = 0; i < result.targets.size(); ++i) {
    GbmSegTargetRecord& rec = result.targets[i];
    Event e;
    e.index = i;
    e.total = targets.size();
    e.to_segment = todo.size();
    e.record = &rec;
    e.pipeline = pipe ? &*pipe : nullptr;
    if (rec.status == "skipped") {
      reread_skipped(o, rec, rep);
      ++result.skipped;
      e.kind = Event::Kind::kTargetFinished;
      rep.emit(e);
      continue;
    }
    e.kind = Event::Kind::kTargetStarted;
    rep.emit(e);
    cv::Mat rgb;
    gbmseg::SegmentResult r;
    bool ok = false;
    try {
      rgb = io::read_image_rgb(rec.path);
      r = pipe->segment(rgb);
      context.target_path = rec.path;
      context.target_name = rec.name;
      const nlohmann::json record = gbmseg::segment_record_to_json(context, r, pipe->options(), pipe->pipeline_options());
      const cv::Mat overlay = gbmseg_prompt_overlay(rgb, r, !o.pipeline.resize_to_original);
      // The mask goes last: a target counts as done when all three files exist.
      write_file_atomically(out_path(o, rec.name, ".prompts.json"), record.dump(1) + "\n");
      io::write_png(out_path(o, rec.name, ".overlay.png"), overlay);
      io::write_mask_png(out_path(o, rec.name, ".png"), r.mask);
      rec.status = "ok";
      rec.width = r.original_width;
      rec.height = r.original_height;
      rec.n_pos = static_cast<int>(r.prompts.ape.final_pos.size());
      rec.n_neg = static_cast<int>(r.prompts.ape.final_neg.size());
      rec.n_warnings = static_cast<int>(r.prompts.warnings.size());
      rec.message = r.prompts.warnings.empty() ? "" : r.prompts.warnings.front();
      rec.t_features = r.timings.features;
      rec.t_prompts = r.timings.prompts;
      rec.t_segment = r.timings.segment;
      rec.t_total = r.timings.total;
      add_metrics(rec, r.mask, r.mask_working, rep);
      ok = true;
      ++result.segmented;
    } catch (const std::exception& ex) {
      ++result.failed;
      rec.status = "failed";
      rec.message = ex.what();
      rec.metrics.reset();
      rec.truth_mask.release();
      rec.compared_mask.release();
    }
    e.kind = Event::Kind::kTargetFinished;
    e.result = ok ? &r : nullptr;
    e.image = ok ? &rgb : nullptr;
    rep.emit(e);
  }

  result.summary_csv = (fs::path(o.out_dir) / ("summary" + o.shard.suffix() + ".csv")).string();
  result.means = write_gbmseg_summary(result.summary_csv, result.targets, result.with_ground_truth);
  if (pipe || !o.shard.whole()) {
    run["options"] = gbmseg::prompt_options_to_json(pipe ? pipe->options() : o.prompts);
    run["targets"] = targets.size();
    run["segmented"] = result.segmented;
    run["failed"] = result.failed;
    if (!o.shard.whole()) {
      // What merge_gbmseg_shards checks and combines.
      run["shard"] = {{"index", o.shard.index}, {"count", o.shard.count}};
      run["inputs_total"] = all_targets.size();
      run["with_ground_truth"] = result.with_ground_truth;
      run["skipped"] = result.skipped;
      run["reference_features_from_cache"] = result.reference_from_cache;
      nlohmann::json items = nlohmann::json::array();
      for (size_t i = 0; i < targets.size(); ++i)
        items.push_back({{"index", global_index[i]}, {"name", targets[i].name}, {"status", result.targets[i].status}});
      run["items"] = items;
      run["complete"] = true;
    }
    result.run_json = (fs::path(o.out_dir) / ("run" + o.shard.suffix() + ".json")).string();
    write_file_atomically(result.run_json, run.dump(1) + "\n");
  }
  return result;
}

}  // namespace nephroseg::backends
