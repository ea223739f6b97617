// The GBMSeg batch runner (see nephroseg/workloads/gbmseg.h).
#include "nephroseg/workloads/gbmseg.h"

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "nephroseg/core/atomic_file.h"
#include "nephroseg/core/batch_record.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/file_hash.h"
#include "nephroseg/core/log.h"
#include "nephroseg/gbmseg/dice.h"
#include "nephroseg/gbmseg/prompts_json.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/io/npy.h"
#include "nephroseg/io/overlay.h"
#include "nephroseg/measure/pixel_size.h"
#include "nephroseg/measure/thickness_map.h"

namespace fs = std::filesystem;

namespace nephroseg::workloads {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string out_path(const GbmSegBatchOptions& o, const std::string& name, const std::string& suffix) {
  return (fs::path(o.out_dir) / (name + suffix)).string();
}

nlohmann::json read_record(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

// Finished: the three files exist, and when this target is to be measured its record
// holds the thickness (an earlier run without --measure is redone).
bool outputs_exist(const GbmSegBatchOptions& o, const std::string& name, bool measure) {
  for (const char* suffix : {".png", ".prompts.json", ".overlay.png"})
    if (!fs::is_regular_file(out_path(o, name, suffix))) return false;
  if (!measure) return true;
  const nlohmann::json j = read_record(out_path(o, name, ".prompts.json"));
  return j.is_object() && j.contains("thickness");
}

// "gbmseg: <features> + <segmenter>; reference features in ..." (kModelsReady).
std::string models_ready_line(const gbmseg::GbmSegPipeline& p, size_t to_segment, size_t total) {
  return detail::concat("gbmseg: ", p.feature_extractor().name(), " + ", p.segmenter().name(),
                        "; reference features in ", io::format_fixed(p.reference_seconds(), 1), " s (",
                        p.reference_patch_sets().fg.size(), " fg / ", p.reference_patch_sets().bg.size(),
                        " bg patches); ", to_segment, " of ", total, " target(s) to segment at ",
                        p.options().size, "x", p.options().size);
}

// "gbmseg [i/n] name: 12 pos / 30 neg, Dice 0.9, GBM 300 nm (normal) (4.2 s)".
std::string target_line(const GbmSegTargetRecord& r, size_t index, size_t total) {
  std::string status = r.status == ItemStatus::kSkipped  ? "skipped (outputs exist)"
                       : r.status == ItemStatus::kFailed ? "FAILED"
                                                         : "";
  if (r.status == ItemStatus::kOk) {
    status = detail::concat(r.n_pos, " pos / ", r.n_neg, " neg");
    if (r.metrics) status += ", Dice " + io::format_fixed(r.metrics->dice, 4);
    if (r.thickness && r.thickness->note.empty())
      status += ", GBM " + io::format_fixed(r.thickness->reference_value_nm, 0) + " nm (" +
                r.thickness->verdict + ")";
    status += " (" + io::format_fixed(r.t_total, 1) + " s)";
  }
  return detail::concat("gbmseg [", index + 1, "/", total, "] ", r.name, ": ", status);
}

// Collects the warnings and passes every event on.
struct Reporter {
  const EventSink& events;
  GbmSegBatchResult& result;
  void emit(Event::Kind kind, std::string message, const GbmSegEventDetail* d = nullptr, size_t index = 0,
            size_t total = 0) const {
    Event e;
    e.kind = kind;
    e.index = index;
    e.total = total;
    e.message = std::move(message);
    if (d) {
      e.detail = d;
      if (d->record) e.item = d->record->name, e.status = d->record->status;
    }
    workloads::emit(events, e);
  }
  void warn(const std::string& message) const {
    result.warnings.push_back(message);
    emit(Event::Kind::kWarning, message);
  }
  void info(const std::string& message) const { emit(Event::Kind::kInfo, message); }
};

// The lines that sum a run up, as kInfo events (and kError when a target failed).
void report_summary(const GbmSegBatchOptions& o, const GbmSegBatchResult& r, const Reporter& rep) {
  if (r.segmented + r.failed == 0)
    rep.info(detail::concat("gbmseg: all ", r.targets.size(), " target(s) already have outputs in '",
                            o.out_dir, "' (use --overwrite to redo)"));
  if (r.means) {
    const GbmSegMeans& m = *r.means;
    rep.info(detail::concat("gbmseg: mean over ", m.n, " image(s): Dice ", io::format_fixed(m.dice, 4),
                            ", IoU ", io::format_fixed(m.iou, 4), ", precision ",
                            io::format_fixed(m.precision, 4), ", recall ", io::format_fixed(m.recall, 4),
                            " (authors' weighted Dice ", io::format_fixed(m.dice_authors_weighted, 4), ")"));
  }
  if (!o.shard.whole())
    rep.info(detail::concat(
        "gbmseg: shard ", o.shard.text(), ": ", r.targets.size(), " of ", r.inputs_total, " target(s)",
        r.reference_from_cache ? "; reference features from reference.features.npy" : ""));
  if (r.references > 1) rep.info(detail::concat("gbmseg: ", r.references, " references pooled"));
  if (r.measured) {
    int n = 0;
    for (const auto& t : r.targets) n += t.thickness && t.thickness->note.empty();
    rep.info(detail::concat("gbmseg: thickness measured in ", n, " of ", r.targets.size(), " target(s)",
                            r.report_html.empty() ? std::string() : " -> " + r.report_html));
  }
  rep.info(detail::concat("gbmseg: ", r.segmented, " segmented, ", r.skipped, " skipped, ", r.failed,
                          " failed -> ", r.summary_csv));
  if (r.failed > 0)
    rep.emit(Event::Kind::kError, detail::concat(r.failed, " of ", r.targets.size(),
                                                 " target(s) failed (see ", r.summary_csv, ")"));
}

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
  NEPHRO_CHECK(fs::is_regular_file(spec.checkpoint), what, " checkpoint '", spec.checkpoint,
               "' does not exist");
}

std::vector<io::InputItem> collect_targets(const GbmSegBatchOptions& o, const Reporter& rep) {
  if (!o.items.empty()) return o.items;
  std::vector<io::InputItem> items = io::list_inputs(o.targets, "target");
  if (o.ground_truth.empty()) return items;
  items = io::pair_by_stem(std::move(items), o.ground_truth, "ground truth", io::Partner::kOptional);
  for (const auto& it : items)
    if (it.partner.empty())
      rep.warn(detail::concat("no ground truth for target '", it.name, "' in '", o.ground_truth, "'"));
  return items;
}

// The reference mask keeps its raw values and channels (the authors resize the RGB mask
// with bicubic and test every channel for non-zero); 16-bit / float masks are binarised.
cv::Mat read_reference_mask(const std::string& path, const Reporter& rep) {
  cv::Mat raw = io::read_image_raw(path);
  if (raw.depth() == CV_8U && raw.channels() <= 4) return raw;
  rep.warn(detail::concat("reference mask '", path,
                          "' is not 8-bit with 1-4 channels; binarised (non-zero -> 255) "
                          "before resizing"));
  return io::binarize_mask(raw);
}

// Metrics of the written mask against the ground truth, compared at the truth's size:
// the written mask if the sizes agree, else the working-size mask if that fits, else the
// mask resized to the truth (nearest) with a warning.
void add_metrics(GbmSegTargetRecord& rec, const cv::Mat& written, const cv::Mat& working,
                 const Reporter& rep) {
  if (rec.ground_truth.empty()) return;
  cv::Mat gt = io::read_mask(rec.ground_truth);
  cv::Mat pred = written;
  if (gt.size() != written.size()) {
    if (!working.empty() && gt.size() == working.size()) {
      pred = working;
    } else {
      rep.warn(detail::concat("ground truth '", rec.ground_truth, "' is ", gt.cols, "x", gt.rows,
                              ", the mask ", written.cols, "x", written.rows,
                              "; the mask is resized to the ground truth (nearest) for the metrics"));
      pred = gbmseg::resize_mask(written, gt.cols, gt.rows, gbmseg::MaskResize::kNearest);
    }
  }
  rec.metrics = eval::compute_metrics(pred, gt);
  rec.truth_mask = gt;
  rec.compared_mask = pred;
}

// A finished target: its row is re-read from the files.
void reread_skipped(const GbmSegBatchOptions& o, GbmSegTargetRecord& rec, bool measure, const Reporter& rep) {
  try {
    const cv::Mat written = io::read_mask(out_path(o, rec.name, ".png"));
    rec.width = written.cols;
    rec.height = written.rows;
    const nlohmann::json j = read_record(out_path(o, rec.name, ".prompts.json"));
    if (measure) rec.thickness = gbmseg_thickness_from_json(j);
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
  key["features"] = {
      {"kind", f.kind},
      {"checkpoint", f.checkpoint.empty() ? std::string() : fs::path(f.checkpoint).filename().string()},
      {"checkpoint_fingerprint", f.checkpoint.empty() ? std::string() : file_fingerprint(f.checkpoint)},
      {"type", f.model_type},
      {"config_fingerprint", f.config_json.empty()                ? std::string()
                             : fs::is_regular_file(f.config_json) ? file_fingerprint(f.config_json)
                                                                  : text_fingerprint(f.config_json)},
      {"random_weights", f.random_weights},
      {"seed", static_cast<uint64_t>(f.seed)}};
  if (f.precision != Precision::kFp32) key["features"]["precision"] = precision_names().name(f.precision);
  const std::vector<ReferenceFiles> refs = list_references(o);
  key["reference_image"] = file_fingerprint(refs.front().image);
  key["reference_mask"] = file_fingerprint(refs.front().mask);
  if (refs.size() > 1) {
    nlohmann::json all = nlohmann::json::array();
    for (const auto& r : refs) all.push_back({file_fingerprint(r.image), file_fingerprint(r.mask)});
    key["references"] = all;
  }
  key["size"] = o.prompts.size;
  key["patch_size"] = o.prompts.patch_size;
  return key;
}

// Sets (pools) the references in the pipeline.
void set_references(gbmseg::GbmSegPipeline& pipe, const std::vector<ReferenceFiles>& refs,
                    const Reporter& rep) {
  for (size_t i = 0; i < refs.size(); ++i) {
    const cv::Mat image = io::read_image_rgb(refs[i].image);
    const cv::Mat mask = read_reference_mask(refs[i].mask, rep);
    if (i == 0) {
      pipe.set_reference(image, mask);
    } else {
      pipe.add_reference(image, mask);
    }
  }
}

// Sets the pipeline's references from OUT/reference.features.npy when its sidecar
// matches, else computes them and stores both (atomically: concurrent shards write the
// same bytes). Several references are stored stacked ([k*G*G, D]).
bool set_reference_cached(gbmseg::GbmSegPipeline& pipe, const GbmSegBatchOptions& o,
                          const std::vector<ReferenceFiles>& refs, const Reporter& rep) {
  const std::string npy = (fs::path(o.out_dir) / "reference.features.npy").string();
  const std::string side = (fs::path(o.out_dir) / "reference.features.json").string();
  const nlohmann::json key = reference_cache_key(o);
  if (fs::is_regular_file(npy) && fs::is_regular_file(side)) {
    std::ifstream in(side);
    const nlohmann::json stored = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    NEPHRO_CHECK(stored.is_object() && stored.contains("key"), "'", side,
                 "' is not a reference-features record");
    if (stored["key"] != key) {
      std::string field = "settings";
      for (const auto& item : key.items())
        if (!stored["key"].contains(item.key()) || stored["key"][item.key()] != item.value())
          field = item.key();
      NEPHRO_FAIL("'", npy, "' was computed with other settings than this run (", field,
                  " differs): use another --out, or delete it and the finished outputs to redo the batch");
    }
    const at::Tensor all = io::read_npy(npy);
    const int64_t n = static_cast<int64_t>(o.prompts.grid()) * o.prompts.grid();
    NEPHRO_CHECK(all.dim() == 2 && all.size(0) == n * static_cast<int64_t>(refs.size()), "'", npy, "' holds ",
                 all.sizes(), " features, expected ", refs.size(), " x ", n, " rows");
    for (size_t i = 0; i < refs.size(); ++i) {
      const cv::Mat image = gbmseg::resize_to_working(io::read_image_rgb(refs[i].image), o.prompts.size);
      const cv::Mat mask = gbmseg::resize_to_working(read_reference_mask(refs[i].mask, rep), o.prompts.size);
      const at::Tensor f = all.slice(0, static_cast<int64_t>(i) * n, static_cast<int64_t>(i + 1) * n);
      if (i == 0) {
        pipe.set_reference_working(image, mask, f);
      } else {
        pipe.add_reference_working(image, mask, f);
      }
    }
    return true;
  }
  set_references(pipe, refs, rep);
  io::write_npy(npy, pipe.reference_features());
  nlohmann::json record;
  record["key"] = key;
  record["shape"] = {pipe.reference_features().size(0), pipe.reference_features().size(1)};
  record["features_backend"] = pipe.feature_extractor().name();
  write_file_atomically(side, record.dump(1) + "\n");
  return false;
}

// How an input image became the 8-bit RGB the models saw (io::to_rgb8's rule).
nlohmann::json input_record(const std::string& path, const cv::Mat& raw) {
  const int depth = raw.depth();
  const char* type = depth == CV_8U    ? "uint8"
                     : depth == CV_16U ? "uint16"
                     : depth == CV_32F ? "float32"
                                       : "other";
  return {{"format", io::image_format(path)},
          {"stored_as", type},
          {"channels", raw.channels()},
          {"to_8bit", depth == CV_8U
                          ? "unchanged (8-bit)"
                          : "percentile window [p0.5, p99.5] per channel, linear, clipped (io::to_rgb8)"}};
}

}  // namespace

cv::Mat gbmseg_thickness_picture(const cv::Mat& overlay, const cv::Mat& image_rgb, const cv::Mat& mask,
                          const measure::ThicknessResult& r, const measure::ReferenceRange& range) {
  measure::ThicknessMapOptions mo;
  mo.range = &range;
  cv::Mat map = measure::draw_thickness_map(image_rgb, mask, r, mo);
  cv::Mat left = cv::Mat(map.rows, overlay.cols, CV_8UC3, cv::Scalar(255, 255, 255));
  overlay.copyTo(left(cv::Rect(0, 0, overlay.cols, std::min(overlay.rows, map.rows))));
  cv::Mat out;
  cv::hconcat(left, map, out);
  return out;
}

std::vector<ReferenceFiles> list_references(const GbmSegBatchOptions& o) {
  std::vector<ReferenceFiles> given = o.references;
  if (given.empty()) given.push_back({o.reference_image, o.reference_mask});
  std::vector<ReferenceFiles> out;
  for (const ReferenceFiles& r : given) {
    NEPHRO_CHECK(!r.image.empty() && !r.mask.empty(), "a reference needs an image and a mask");
    NEPHRO_CHECK(fs::exists(r.image), "reference image '", r.image, "' does not exist");
    NEPHRO_CHECK(fs::exists(r.mask), "reference mask '", r.mask, "' does not exist");
    const bool di = fs::is_directory(r.image), dm = fs::is_directory(r.mask);
    NEPHRO_CHECK(di == dm, "reference image '", r.image, "' and mask '", r.mask,
                 "' must both be files or both be folders");
    if (!di) {
      out.push_back(r);
      continue;
    }
    const std::vector<io::InputItem> items = io::pair_by_stem(
        io::list_inputs(r.image, "reference image"), r.mask, "reference mask", io::Partner::kRequired);
    NEPHRO_CHECK(!items.empty(), "reference folder '", r.image, "' holds no image");
    for (const auto& it : items) out.push_back({it.path, it.partner});
  }
  return out;
}

cv::Mat gbmseg_prompt_overlay(const cv::Mat& target_rgb, const gbmseg::SegmentResult& r, bool working_size) {
  const cv::Mat& base = working_size ? r.image_working : target_rgb;
  cv::Mat overlay =
      io::overlay_mask(base, r.mask, io::colors::kYellow, /*alpha=*/0.35, /*contour_thickness=*/1);
  io::PromptMarkers markers;
  markers.positive = io::colors::kGreen;
  markers.negative = io::colors::kRed;
  markers.radius = std::max(3, static_cast<int>(std::lround(std::max(r.mask.cols, r.mask.rows) / 110.0)));
  io::draw_prompts(overlay, r.points, r.labels, static_cast<double>(r.mask.cols) / r.mask_working.cols,
                   static_cast<double>(r.mask.rows) / r.mask_working.rows, markers);
  return overlay;
}

std::optional<GbmSegMeans> write_gbmseg_summary(const std::string& path,
                                                const std::vector<GbmSegTargetRecord>& recs, bool with_gt,
                                                bool with_thickness) {
  io::CsvRow header{"name",  "target", "status",     "message",    "width",     "height",    "mask",
                    "n_pos", "n_neg",  "n_warnings", "features_s", "prompts_s", "segment_s", "total_s"};
  if (with_thickness) {
    for (const char* c :
         {"nm_per_pixel", "calibration_source", "thickness_oi_harmonic_3d_nm", "thickness_direct_median_nm",
          "thickness_direct_mean_nm", "n_intercepts", "thickness_class", "thickness_note"})
      header.push_back(c);
  }
  const size_t gt_base = header.size();  // first ground-truth column
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
                   item_status_names().name(r.status),
                   r.message,
                   r.width ? std::to_string(r.width) : "",
                   r.height ? std::to_string(r.height) : "",
                   r.status == ItemStatus::kFailed ? "" : r.name + ".png",
                   num_int(r.n_pos),
                   num_int(r.n_neg),
                   num_int(r.n_warnings),
                   num(r.t_features),
                   num(r.t_prompts),
                   num(r.t_segment),
                   num(r.t_total)};
    if (with_thickness) {
      if (r.thickness) {
        const GbmSegThickness& t = *r.thickness;
        const bool ok = t.note.empty();
        for (const std::string& c :
             {num(t.nm_per_pixel), t.calibration_source, ok ? num(t.oi_harmonic_3d_nm) : "",
              ok ? num(t.direct.median) : "", ok ? num(t.direct.mean) : "", ok ? std::to_string(t.oi.n) : "",
              t.verdict, t.note})
          row.push_back(c);
      } else {
        for (int k = 0; k < 7; ++k) row.push_back("");
        row.push_back(r.status == ItemStatus::kFailed
                          ? ""
                          : "no pixel size (no calibration in the file; see --nm-per-pixel)");
      }
    }
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
    mean[3] = detail::concat("over ", means.n,
                             " image(s) with ground truth; textbook means; the authors' weighted "
                             "Dice mean (tools/dice.py) in its own column");
    if (means.n > 0) {
      const gbmseg::DiceSummary authors = gbmseg::evaluate_dice(gts, preds);
      means.dice /= means.n, means.iou /= means.n, means.precision /= means.n, means.recall /= means.n;
      means.dice_authors_weighted = authors.authors_mean;
      means.miou_authors = authors.authors_miou;
      int k = 0;
      for (double v : {means.dice, means.iou, means.precision, means.recall})
        mean[gt_base + 1 + k++] = num(v);
      mean[gt_base + 5] = num(means.dice_authors_weighted);
      mean[gt_base + 6] = num(means.miou_authors);
      out = means;
    }
    rows.push_back(mean);
  }
  io::write_csv(path, header, rows);
  return out;
}

const EnumNames<GbmSegMeasureOptions::Mode>& gbmseg_measure_mode_names() {
  using Mode = GbmSegMeasureOptions::Mode;
  static const EnumNames<Mode> names("measure mode",
                                     {{Mode::kAuto, "auto", {}}, {Mode::kOn, "on", {}}, {Mode::kOff, "off", {}}});
  return names;
}

namespace {

// What the steps of one batch share.
struct Batch {
  Batch(const GbmSegBatchOptions& options, const Reporter& reporter, GbmSegBatchResult& out)
      : o(options), rep(reporter), result(out) {}
  const GbmSegBatchOptions& o;
  const Reporter& rep;
  GbmSegBatchResult& result;
  std::vector<ReferenceFiles> refs;
  std::vector<io::InputItem> all_targets, targets;  // the whole run, this shard's
  std::vector<size_t> global_index;                 // of each of this shard's targets in all_targets
  std::vector<measure::PixelSize> pixel_sizes;      // per target of this shard
  std::vector<size_t> todo;                         // targets left to segment
  nlohmann::json run;                               // run.json as it grows
  std::optional<gbmseg::GbmSegPipeline> pipe;
  gbmseg::SegmentRecordContext context;

  bool measures(size_t i) const { return result.measured && pixel_sizes[i].known(); }
};

// Everything cheap is checked before a model is loaded or a file written.
void check_working_size(const gbmseg::PromptOptions& prompts) {
  NEPHRO_CHECK(prompts.patch_size > 0 && prompts.size > 0 && prompts.size % prompts.patch_size == 0,
               "working size ", prompts.size, " must be a positive multiple of the patch size ",
               prompts.patch_size);
}

void check_backends(const GbmSegBatchOptions& o) {
  if (!o.features_backend) {
    NEPHRO_CHECK(known(gbmseg::feature_extractor_kinds(), o.features.kind), "features backend '",
                 o.features.kind,
                 "' is not available in this build (known: ", join(gbmseg::feature_extractor_kinds()), ")");
    check_model_spec(o.features, "dinov2", "features backend");
  }
  if (!o.segmenter_backend) {
    NEPHRO_CHECK(known(gbmseg::point_segmenter_kinds(), o.segmenter.kind), "segmenter backend '",
                 o.segmenter.kind,
                 "' is not available in this build (known: ", join(gbmseg::point_segmenter_kinds()), ")");
    check_model_spec(o.segmenter, "sam", "segmenter backend");
  }
}

// The targets of the whole run and this shard's share of them.
void plan_targets(Batch& b) {
  b.all_targets = collect_targets(b.o, b.rep);
  for (size_t i = 0; i < b.all_targets.size(); ++i) {
    if (!b.o.shard.owns(i)) continue;
    b.targets.push_back(b.all_targets[i]);
    b.global_index.push_back(i);
  }
  b.result.inputs_total = b.all_targets.size();
}

// Thickness: which targets have a pixel size (checked before anything is loaded).
void resolve_pixel_sizes(Batch& b) {
  using Mode = GbmSegMeasureOptions::Mode;
  const GbmSegMeasureOptions& m = b.o.measure;
  const double explicit_nm = measure::parse_nm_per_pixel_option(m.nm_per_pixel);
  b.pixel_sizes.assign(b.targets.size(), {});
  if (m.mode == Mode::kOff) return;
  const auto warn = [&b](const std::string& w) { b.rep.warn(w); };
  for (size_t i = 0; i < b.targets.size(); ++i)
    b.pixel_sizes[i] = m.mode == Mode::kOn ? measure::resolve_pixel_size(b.targets[i].path, explicit_nm, warn)
                                           : measure::find_pixel_size(b.targets[i].path, explicit_nm, warn);
  // kAuto: the thickness columns depend on the whole run (every shard writes the same).
  b.result.measured = m.mode == Mode::kOn || explicit_nm > 0;
  for (size_t i = 0; i < b.all_targets.size() && !b.result.measured; ++i) {
    try {
      b.result.measured = measure::find_pixel_size(b.all_targets[i].path, 0).known();
    } catch (const Error&) {
      // an unreadable target fails on its own below
    }
  }
}

void prepare_out_dir(const GbmSegBatchOptions& o, const Reporter& rep) {
  NEPHRO_CHECK(!o.out_dir.empty(), "no output folder given");
  NEPHRO_CHECK(!fs::exists(o.out_dir) || fs::is_directory(o.out_dir), "output folder '", o.out_dir,
               "' exists and is not a folder");
  fs::create_directories(o.out_dir);
  // Temporaries left by a run killed with SIGKILL (live writers' files are kept).
  if (const size_t n = remove_stale_temporaries(o.out_dir))
    rep.warn(
        detail::concat("removed ", n, " temporary file(s) left in '", o.out_dir, "' by an interrupted run"));
}

// One record per target: finished ones (all files there) are skipped unless overwrite.
void plan_records(Batch& b) {
  b.result.with_ground_truth =
      !b.o.ground_truth.empty() || std::any_of(b.all_targets.begin(), b.all_targets.end(),
                                               [](const auto& t) { return !t.partner.empty(); });
  for (size_t i = 0; i < b.targets.size(); ++i) {
    const io::InputItem& t = b.targets[i];
    GbmSegTargetRecord rec;
    rec.name = t.name;
    rec.path = t.path;
    rec.ground_truth = t.partner;
    if (outputs_exist(b.o, t.name, b.measures(i)) && !b.o.overwrite) {
      rec.status = ItemStatus::kSkipped;
      rec.message = "outputs exist (use --overwrite to redo)";
    } else {
      b.todo.push_back(i);
    }
    b.result.targets.push_back(std::move(rec));
  }
}

// What run.json says whether or not a model runs.
nlohmann::json run_record_header(const Batch& b) {
  const GbmSegBatchOptions& o = b.o;
  nlohmann::json run;
  run["command"] = "gbmseg";  // the record names its command, as every batch record does
  run["reference"] = {{"image", b.refs.front().image}, {"mask", b.refs.front().mask}};
  if (b.refs.size() > 1) {
    nlohmann::json all = nlohmann::json::array();
    for (const auto& r : b.refs) all.push_back({{"image", r.image}, {"mask", r.mask}});
    run["references"] = all;
  }
  run["measure"] = {{"mode", gbmseg_measure_mode_names().name(o.measure.mode)},
                    {"nm_per_pixel", o.measure.nm_per_pixel},
                    {"thickness_columns", b.result.measured},
                    {"reference_range", o.measure.range.id}};
  run["preset"] = gbmseg::prompt_preset_names().name(o.preset);
  run["ablation"] =
      o.ablation ? nlohmann::json(gbmseg::ablation_row_names().name(*o.ablation)) : nlohmann::json();
  return run;
}

// The backends and the reference (only when something is left to do).
void load_models(Batch& b) {
  const GbmSegBatchOptions& o = b.o;
  GbmSegBatchResult& result = b.result;
  const auto t0 = Clock::now();
  auto fx = o.features_backend ? o.features_backend : gbmseg::make_feature_extractor(o.features);
  auto sg = o.segmenter_backend ? o.segmenter_backend : gbmseg::make_point_segmenter(o.segmenter);
  result.model_load_s = seconds_since(t0);
  result.features_name = fx->name();
  result.segmenter_name = sg->name();
  b.pipe.emplace(fx, sg, o.prompts, o.pipeline);
  if (!o.shard.whole() && !o.features_backend) {
    result.reference_from_cache = set_reference_cached(*b.pipe, o, b.refs, b.rep);
  } else {
    set_references(*b.pipe, b.refs, b.rep);
  }
  result.references = b.pipe->reference_count();
  result.reference_features_s = b.pipe->reference_seconds();
  b.run["backends"] = {{"features", result.features_name}, {"segmenter", result.segmenter_name}};
  b.run["reference_features_s"] = result.reference_features_s;
  b.run["model_load_s"] = result.model_load_s;
  b.context.reference_image = b.refs.front().image;
  b.context.reference_mask = b.refs.front().mask;
  b.context.features_name = result.features_name;
  b.context.segmenter_name = result.segmenter_name;
  b.context.preset = o.preset;
  b.context.ablation = o.ablation;
  GbmSegEventDetail d;
  d.to_segment = b.todo.size();
  d.pipeline = &*b.pipe;
  b.rep.emit(Event::Kind::kModelsReady, models_ready_line(*b.pipe, b.todo.size(), b.targets.size()), &d, 0,
             b.targets.size());
}

// Measures target i's mask into rec and record["thickness"]; returns the thickness
// picture (empty when nothing was measured).
cv::Mat measure_target(const Batch& b, size_t i, const cv::Mat& rgb, const gbmseg::SegmentResult& r,
                       const cv::Mat& overlay, GbmSegTargetRecord& rec, nlohmann::json& record) {
  const measure::PixelSize& px = b.pixel_sizes[i];
  const GbmSegBatchOptions& o = b.o;
  // Measured at the target's own size (the calibration's pixels).
  const cv::Mat full =
      o.pipeline.resize_to_original
          ? r.mask
          : gbmseg::resize_mask(r.mask, r.original_width, r.original_height, gbmseg::MaskResize::kNearest);
  measure::ThicknessResult tr;
  rec.thickness = measure_gbmseg_mask(full, px.nm_per_pixel, px.source, o.measure, &tr);
  record["thickness"] = gbmseg_thickness_to_json(*rec.thickness, o.measure.range);
  record["thickness"]["calibration"] = {
      {"file_source", io::calibration_source_names().name(px.in_file.source)},
      {"file_unit", px.in_file.unit},
      {"magnification", record_number(px.in_file.magnification > 0 ? px.in_file.magnification : NAN)}};
  if (!rec.thickness->note.empty()) return {};
  cv::Mat left = overlay;  // at S x S when the mask is kept at the working size
  if (left.size() != full.size()) cv::resize(overlay, left, full.size(), 0, 0, cv::INTER_LINEAR);
  record["thickness"]["map"] = rec.name + ".thickness.png";
  return gbmseg_thickness_picture(left, rgb, full, tr, o.measure.range);
}

// The numbers of a segmented target's summary row.
void fill_record(GbmSegTargetRecord& rec, const gbmseg::SegmentResult& r) {
  rec.status = ItemStatus::kOk;
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
}

// Segments target i and writes its files (the mask last: a target counts as done when
// all its files exist). Throws on failure; *rgb and *r receive the image and result.
void segment_target(Batch& b, size_t i, cv::Mat* rgb, gbmseg::SegmentResult* r) {
  GbmSegTargetRecord& rec = b.result.targets[i];
  const GbmSegBatchOptions& o = b.o;
  const cv::Mat raw = io::read_image_raw(rec.path);
  *rgb = io::to_rgb8(raw);
  *r = b.pipe->segment(*rgb);
  b.context.target_path = rec.path;
  b.context.target_name = rec.name;
  nlohmann::json record =
      gbmseg::segment_record_to_json(b.context, *r, b.pipe->options(), b.pipe->pipeline_options());
  record["input"] = input_record(rec.path, raw);
  if (b.refs.size() > 1) record["references"] = b.run["references"];
  const cv::Mat overlay = gbmseg_prompt_overlay(*rgb, *r, !o.pipeline.resize_to_original);
  const cv::Mat picture = b.measures(i) ? measure_target(b, i, *rgb, *r, overlay, rec, record) : cv::Mat();
  write_file_atomically(out_path(o, rec.name, ".prompts.json"), record.dump(1) + "\n");
  io::write_png(out_path(o, rec.name, ".overlay.png"), overlay);
  if (!picture.empty()) io::write_png(out_path(o, rec.name, ".thickness.png"), picture);
  io::write_mask_png(out_path(o, rec.name, ".png"), r->mask);
  fill_record(rec, *r);
  add_metrics(rec, r->mask, r->mask_working, b.rep);
}

// One target: skipped (its row re-read), segmented, or failed (recorded); its events.
void process_target(Batch& b, size_t i) {
  GbmSegBatchResult& result = b.result;
  GbmSegTargetRecord& rec = result.targets[i];
  const size_t n = b.targets.size();
  GbmSegEventDetail d;
  d.to_segment = b.todo.size();
  d.record = &rec;
  d.pipeline = b.pipe ? &*b.pipe : nullptr;
  if (rec.status == ItemStatus::kSkipped) {
    reread_skipped(b.o, rec, b.measures(i), b.rep);
    ++result.skipped;
    b.rep.emit(Event::Kind::kItemFinished, target_line(rec, i, n), &d, i, n);
    return;
  }
  b.rep.emit(Event::Kind::kItemStarted, "", &d, i, n);
  cv::Mat rgb;
  gbmseg::SegmentResult r;
  bool ok = false;
  try {
    segment_target(b, i, &rgb, &r);
    ok = true;
    ++result.segmented;
  } catch (const std::exception& ex) {
    ++result.failed;
    rec.status = ItemStatus::kFailed;
    rec.message = ex.what();
    rec.metrics.reset();
    rec.thickness.reset();
    rec.truth_mask.release();
    rec.compared_mask.release();
  }
  d.result = ok ? &r : nullptr;
  d.image = ok ? &rgb : nullptr;
  b.rep.emit(Event::Kind::kItemFinished, target_line(rec, i, n), &d, i, n);
  if (!ok)
    b.rep.emit(Event::Kind::kError, detail::concat("target '", rec.path, "': ", rec.message), &d, i, n);
}

// summary.csv, report.html and run.json (run.shard-K-of-N.json).
void write_run_files(Batch& b) {
  const GbmSegBatchOptions& o = b.o;
  GbmSegBatchResult& result = b.result;
  result.summary_csv = (fs::path(o.out_dir) / ("summary" + o.shard.suffix() + ".csv")).string();
  result.means =
      write_gbmseg_summary(result.summary_csv, result.targets, result.with_ground_truth, result.measured);
  if (result.measured && o.shard.whole())
    result.report_html = write_gbmseg_report(o.out_dir, result.targets, o.measure.range);
  if (!b.pipe && o.shard.whole()) return;
  nlohmann::json& run = b.run;
  run["options"] = gbmseg::prompt_options_to_json(b.pipe ? b.pipe->options() : o.prompts);
  run["targets"] = b.targets.size();
  run["segmented"] = result.segmented;
  run["failed"] = result.failed;
  if (!o.shard.whole()) {
    // What merge_gbmseg_shards checks and combines.
    run["shard"] = {{"index", o.shard.index}, {"count", o.shard.count}};
    run["inputs_total"] = b.all_targets.size();
    run["with_ground_truth"] = result.with_ground_truth;
    run["skipped"] = result.skipped;
    run["reference_features_from_cache"] = result.reference_from_cache;
    nlohmann::json items = nlohmann::json::array();
    for (size_t i = 0; i < b.targets.size(); ++i)
      items.push_back({{"index", b.global_index[i]},
                       {"name", b.targets[i].name},
                       {"status", item_status_names().name(result.targets[i].status)}});
    run["items"] = items;
    run["complete"] = true;
  }
  result.run_json = (fs::path(o.out_dir) / ("run" + o.shard.suffix() + ".json")).string();
  write_file_atomically(result.run_json, run.dump(1) + "\n");
}

}  // namespace

GbmSegBatchResult run_gbmseg_batch(const GbmSegBatchOptions& o, const EventSink& events) {
  GbmSegBatchResult result;
  const Reporter rep{events, result};
  Batch b{o, rep, result};
  check_working_size(o.prompts);
  b.refs = list_references(o);
  check_backends(o);
  plan_targets(b);
  resolve_pixel_sizes(b);
  prepare_out_dir(o, rep);
  plan_records(b);
  b.run = run_record_header(b);
  if (!b.todo.empty()) load_models(b);
  for (size_t i = 0; i < result.targets.size(); ++i) process_target(b, i);
  write_run_files(b);
  report_summary(o, result, rep);
  return result;
}

}  // namespace nephroseg::workloads
