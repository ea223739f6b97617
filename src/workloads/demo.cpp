#include "nephroseg/workloads/demo.h"
#include "nephroseg/workloads/model_files.h"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "nephroseg/core/atomic_file.h"
#include "nephroseg/core/error.h"
#include "nephroseg/eval/report.h"
#include "nephroseg/gbmseg/classical_features.h"
#include "nephroseg/gbmseg/classical_segmenter.h"
#include "nephroseg/gbmseg/model_backends.h"
#include "nephroseg/gbmseg/pipeline.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/io/overlay.h"
#include "nephroseg/measure/thickness.h"
#include "nephroseg/workloads/gbmseg.h"

namespace fs = std::filesystem;

namespace nephroseg::workloads {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Thickness of a mask in nm by both estimators; zeros when the mask cannot be measured.
void measure_mask(const cv::Mat& mask, double nm_per_pixel, double* oi_nm, double* direct_nm) {
  *oi_nm = 0;
  *direct_nm = 0;
  if (cv::countNonZero(mask) == 0) return;
  measure::ThicknessOptions o;
  o.nm_per_pixel = nm_per_pixel;
  const measure::ThicknessResult r = measure::measure_thickness(mask, o);
  if (r.oi.n > 0) *oi_nm = r.oi.harmonic_mean * nm_per_pixel;
  if (r.direct.n > 0) *direct_nm = r.direct.median * nm_per_pixel;
}

}  // namespace

ModelFiles find_model_files(const std::string& dir) {
  ModelFiles m;
  if (dir.empty() || !fs::is_directory(dir)) return m;
  // Preference: the table's order (the authors' models first: ViT-g DINOv2, ViT-L SAM).
  for (const OfficialCheckpoint& c : official_checkpoints()) {
    if (c.family != "dinov2" && c.family != "sam") continue;
    if (!fs::is_regular_file(fs::path(dir) / c.file)) continue;
    std::string& checkpoint = c.family == "dinov2" ? m.dinov2_checkpoint : m.sam_checkpoint;
    std::string& type = c.family == "dinov2" ? m.dinov2_type : m.sam_type;
    if (!checkpoint.empty()) continue;
    checkpoint = (fs::path(dir) / c.file).string();
    type = c.type;
  }
  return m;
}

std::string resolve_models_dir(const std::string& explicit_dir) {
  if (!explicit_dir.empty()) return explicit_dir;
  const char* env = std::getenv("NEPHROSEG_MODELS");
  return env ? std::string(env) : std::string();
}

ResolvedBackends resolve_backends(const std::string& models_dir, const std::string& features,
                                  const std::string& segmenter) {
  NEPHRO_CHECK(features == "auto" || features == "dinov2" || features == "classical",
               "features must be auto, dinov2 or classical, got '", features, "'");
  NEPHRO_CHECK(segmenter == "auto" || segmenter == "sam" || segmenter == "classical",
               "segmenter must be auto, sam or classical, got '", segmenter, "'");
  const ModelFiles files = find_model_files(models_dir);
  const std::string where =
      models_dir.empty() ? std::string("found (no models folder given: --models DIR or $NEPHROSEG_MODELS)")
                         : "in " + models_dir;
  ResolvedBackends r;

  if (features != "classical") {
    if (files.dinov2_checkpoint.empty()) {
      NEPHRO_CHECK(features == "auto",
                   "--features dinov2: no DINOv2 checkpoint (dinov2_vit{g,l,b,s}14_pretrain.pth) ", where);
      r.notes.push_back("no DINOv2 checkpoint " + where + ": using the weight-free classical features");
    } else {
      try {
        r.features = gbmseg::make_feature_extractor(
            {"dinov2", files.dinov2_checkpoint, files.dinov2_type, "", false, 0});
        r.features_kind = "dinov2";
        r.notes.push_back("DINOv2 features from " + files.dinov2_checkpoint);
      } catch (const Error& e) {
        if (features != "auto") throw;
        r.warnings.push_back(detail::concat("could not load ", files.dinov2_checkpoint, ": ", e.what(),
                                            "; using the classical features"));
        r.notes.push_back("DINOv2 checkpoint " + files.dinov2_checkpoint + " failed to load (" + e.what() +
                          "): using the weight-free classical features");
      }
    }
  }
  if (!r.features) {
    r.features = std::make_shared<gbmseg::ClassicalFeatureExtractor>();
    r.features_kind = "classical";
  }

  if (segmenter != "classical") {
    if (files.sam_checkpoint.empty()) {
      NEPHRO_CHECK(segmenter == "auto", "--segmenter sam: no SAM checkpoint (sam_vit_{l,h,b}_*.pth) ", where);
      r.notes.push_back("no SAM checkpoint " + where + ": using the weight-free classical segmenter");
    } else {
      try {
        r.segmenter =
            gbmseg::make_point_segmenter({"sam", files.sam_checkpoint, files.sam_type, "", false, 0});
        r.segmenter_kind = "sam";
        r.notes.push_back("SAM segmenter from " + files.sam_checkpoint);
      } catch (const Error& e) {
        if (segmenter != "auto") throw;
        r.warnings.push_back(detail::concat("could not load ", files.sam_checkpoint, ": ", e.what(),
                                            "; using the classical segmenter"));
        r.notes.push_back("SAM checkpoint " + files.sam_checkpoint + " failed to load (" + e.what() +
                          "): using the weight-free classical segmenter");
      }
    }
  }
  if (!r.segmenter) {
    r.segmenter = std::make_shared<gbmseg::ClassicalSegmenter>();
    r.segmenter_kind = "classical";
  }
  return r;
}

measure::PhantomOptions demo_phantom_options() {
  measure::PhantomOptions o;
  o.size = 512;
  o.thickness_px = 32.0;
  o.nm_per_pixel = 10.0;
  o.num_membranes = 3;
  return o;
}

DemoResult run_demo(const DemoOptions& o, const EventSink& events) {
  NEPHRO_CHECK(o.num_targets >= 1 && o.num_targets <= 100,
               "demo: the number of targets must be in [1, 100], got ", o.num_targets);
  NEPHRO_CHECK(!o.out_dir.empty(), "demo: no output folder given");
  const auto t_start = std::chrono::steady_clock::now();
  const fs::path out(o.out_dir);
  for (const char* sub : {"reference", "images", "truth", "masks", "overlays", "report"})
    fs::create_directories(out / sub);

  DemoResult result;
  const std::string models_dir = resolve_models_dir(o.models_dir);
  ResolvedBackends be = resolve_backends(models_dir, o.features, o.segmenter);
  result.features_name = be.features->name();
  result.segmenter_name = be.segmenter->name();
  result.features_kind = be.features_kind;
  result.segmenter_kind = be.segmenter_kind;
  result.weight_free = be.features_kind == "classical" && be.segmenter_kind == "classical";
  result.notes = be.notes;
  const auto say = [&events](Event::Kind kind, const std::string& message) {
    Event e;
    e.kind = kind;
    e.message = message;
    emit(events, e);
  };
  for (const auto& w : be.warnings) say(Event::Kind::kWarning, w);
  for (const auto& n : be.notes) say(Event::Kind::kInfo, n);

  // The phantoms go to disk first: the GBMSeg batch runner reads its inputs from files.
  measure::PhantomOptions po = o.phantom;
  po.seed = o.seed;
  const measure::Phantom ref = measure::generate_phantom(po);
  io::write_png((out / "reference" / "image.png").string(), ref.image);
  io::write_mask_png((out / "reference" / "mask.png").string(), ref.mask);
  std::vector<measure::Phantom> phantoms;
  GbmSegBatchOptions batch;
  for (int i = 0; i < o.num_targets; ++i) {
    po.seed = o.seed + 1 + static_cast<uint64_t>(i);
    phantoms.push_back(measure::generate_phantom(po));
    const std::string name = "phantom_" + std::to_string(po.seed);
    const std::string image = (out / "images" / (name + ".png")).string();
    const std::string truth = (out / "truth" / (name + ".png")).string();
    io::write_png(image, phantoms.back().image);
    io::write_mask_png(truth, phantoms.back().mask);
    batch.items.push_back({name, image, truth});
  }
  batch.reference_image = (out / "reference" / "image.png").string();
  batch.reference_mask = (out / "reference" / "mask.png").string();
  batch.out_dir = (out / "masks").string();
  batch.features_backend = be.features;
  batch.segmenter_backend = be.segmenter;
  batch.prompts = gbmseg::PromptOptions::authors_code();
  batch.overwrite = true;

  eval::EvalOptions eo;
  eo.title = "nephroseg demo: GBMSeg on phantoms (features: " + result.features_name +
             "; segmenter: " + result.segmenter_name + ")";
  eval::EvalRun run;
  std::vector<io::CsvRow> rows;
  nlohmann::json jt = nlohmann::json::array();
  double dice_sum = 0;
  auto t0 = std::chrono::steady_clock::now();
  // Per segmented target: metrics, thickness, the demo's overlay and its rows.
  const auto on_event = [&](const Event& ev) {
    const auto* const* dp = std::any_cast<const GbmSegEventDetail*>(&ev.detail);
    if (!dp) return;
    const GbmSegEventDetail& e = **dp;
    if (ev.kind == Event::Kind::kModelsReady) result.reference_seconds = e.pipeline->reference_seconds();
    if (ev.kind == Event::Kind::kItemStarted) t0 = std::chrono::steady_clock::now();
    if (ev.kind != Event::Kind::kItemFinished || !e.result) return;
    const measure::Phantom& ph = phantoms[ev.index];
    const gbmseg::SegmentResult& sr = *e.result;
    const cv::Mat& rgb = *e.image;
    const cv::Mat& pred = sr.mask;
    DemoTarget t;
    t.seed = o.seed + 1 + static_cast<uint64_t>(ev.index);
    t.name = e.record->name;
    t.num_positive = static_cast<int>(sr.prompts.ape.final_pos.size());
    t.num_negative = static_cast<int>(sr.prompts.ape.final_neg.size());

    eval::EvalItem item = eval::evaluate_pair(t.name, pred, ph.mask, rgb, eo);
    t.dice = item.metrics.dice;
    t.iou = item.metrics.iou;
    t.precision = item.metrics.precision;
    t.recall = item.metrics.recall;
    run.items.push_back(std::move(item));

    t.true_thickness_nm = ph.true_thickness_nm();
    measure_mask(pred, ph.nm_per_pixel, &t.measured_oi_nm, &t.measured_direct_nm);
    double truth_oi = 0;
    measure_mask(ph.mask, ph.nm_per_pixel, &truth_oi, &t.truth_mask_direct_nm);

    cv::Mat ov = io::overlay_mask(rgb, pred, io::colors::kGreen);
    io::draw_mask_contour(ov, ph.mask, io::colors::kMagenta, 1);
    io::PromptMarkers markers;
    markers.positive = io::colors::kYellow;
    markers.negative = io::colors::kRed;
    markers.radius = 4;
    markers.signs = true;
    markers.negatives_on_top = true;
    // Prompts live in the S x S working frame; map them to the image.
    io::draw_prompts(ov, sr.points, sr.labels, static_cast<double>(rgb.cols) / sr.image_working.cols,
                     static_cast<double>(rgb.rows) / sr.image_working.rows, markers);
    io::draw_text(ov, "Dice " + io::format_fixed(t.dice, 3), cv::Point(6, 6));
    io::write_png((out / "overlays" / (t.name + ".png")).string(), ov);

    t.seconds = seconds_since(t0);
    dice_sum += t.dice;
    rows.push_back({t.name, std::to_string(t.seed), io::format_fixed(t.dice, 4),
                    io::format_number(t.true_thickness_nm), io::format_fixed(t.measured_oi_nm, 1),
                    io::format_fixed(t.measured_direct_nm, 1), io::format_fixed(t.truth_mask_direct_nm, 1)});
    jt.push_back({{"name", t.name},
                  {"seed", t.seed},
                  {"dice", t.dice},
                  {"iou", t.iou},
                  {"precision", t.precision},
                  {"recall", t.recall},
                  {"true_thickness_nm", t.true_thickness_nm},
                  {"measured_oi_harmonic_nm", t.measured_oi_nm},
                  {"measured_direct_median_nm", t.measured_direct_nm},
                  {"truth_mask_direct_median_nm", t.truth_mask_direct_nm},
                  {"num_positive", t.num_positive},
                  {"num_negative", t.num_negative},
                  {"warnings", sr.prompts.warnings},
                  {"seconds", t.seconds}});
    say(Event::Kind::kItemFinished,
        detail::concat(t.name, ": Dice ", io::format_fixed(t.dice, 3), ", thickness true ",
                       io::format_fixed(t.true_thickness_nm, 0), " nm, measured ",
                       io::format_fixed(t.measured_direct_nm, 0), " nm (", io::format_fixed(t.seconds, 1),
                       " s)"));
    result.targets.push_back(t);
  };
  const GbmSegBatchResult br = run_gbmseg_batch(batch, on_event);
  for (const GbmSegTargetRecord& r : br.targets)
    NEPHRO_CHECK(r.status == ItemStatus::kOk, "demo: target '", r.name, "' failed: ", r.message);
  result.mean_dice = dice_sum / o.num_targets;

  summarize_run(run);
  eval::write_eval_report((out / "report").string(), run, eo);
  result.report_html = (out / "report" / "report.html").string();
  io::write_csv((out / "thickness.csv").string(),
                {"name", "seed", "dice", "true_thickness_nm", "measured_oi_harmonic_nm",
                 "measured_direct_median_nm", "truth_mask_direct_median_nm"},
                rows);
  result.total_seconds = seconds_since(t_start);
  nlohmann::json doc = {
      {"backends",
       {{"features", result.features_name},
        {"features_kind", result.features_kind},
        {"segmenter", result.segmenter_name},
        {"segmenter_kind", result.segmenter_kind},
        {"weight_free", result.weight_free},
        {"models_dir", models_dir},
        {"notes", result.notes}}},
      {"phantom",
       {{"reference_seed", o.seed},
        {"size", o.phantom.size},
        {"thickness_px", o.phantom.thickness_px},
        {"nm_per_pixel", o.phantom.nm_per_pixel},
        {"membranes", o.phantom.num_membranes},
        {"shape", measure::phantom_shape_name(o.phantom.shape)}}},
      {"prompt_options", "authors_code (S = 560, patch 14, D_sp = D_ex = 70 px, raster order)"},
      {"targets", jt},
      {"mean_dice", result.mean_dice},
      {"reference_seconds", result.reference_seconds},
      {"total_seconds", result.total_seconds}};
  write_file_atomically((out / "demo.json").string(), doc.dump(2) + "\n");
  return result;
}

}  // namespace nephroseg::workloads
