// python/gbmseg.cpp: nephroseg.GbmSeg (one reference, many targets, every prompt stage
// returned) and nephroseg.gbmseg_batch (the library batch runner behind `nephroseg gbmseg`).
#include <set>
#include <type_traits>

#include "common.h"
#include "nephroseg/gbmseg/prompt_stages.h"
#include "nephroseg/workloads/gbmseg.h"
#include "nephroseg/core/error.h"
#include "nephroseg/dinov2/dinov2.h"
#include "nephroseg/gbmseg/model_backends.h"
#include "nephroseg/gbmseg/pipeline.h"
#include "nephroseg/gbmseg/prompt_overrides.h"
#include "nephroseg/io/tensor_mat.h"
#include "nephroseg/measure/reference.h"
#include "nephroseg/sam/sam.h"

namespace nephroseg::python {

namespace {

using gbmseg::Points;

// options={"size": 280, "hard": "h2", "d_ex": "70px", ...} on top of preset / ablation.
gbmseg::PromptOverrides overrides_arg(const std::string& preset, const std::string& ablation,
                                      const py::object& options) {
  gbmseg::PromptOverrides o;
  o.preset = preset;
  o.ablation = ablation;
  if (options.is_none()) return o;
  if (!py::isinstance<py::dict>(options)) value_error("options must be a dict of prompt option overrides");
  const std::set<std::string> radii{"d_sp_pos", "d_sp_neg", "d_ex", "d_sp_hard"};
  for (const auto& [key_obj, value] : py::reinterpret_borrow<py::dict>(options)) {
    const std::string key = py::str(key_obj).cast<std::string>();
    try {
      if (key == "size") o.size = value.cast<int>();
      else if (key == "patch_rule") o.patch_rule = value.cast<std::string>();
      else if (key == "patch_threshold") o.patch_threshold = value.cast<int>();
      else if (key == "include_last_row_col") o.include_last_row_col = value.cast<bool>();
      else if (key == "hard") o.hard = value.cast<std::string>();
      else if (key == "order") o.order = value.cast<std::string>();
      else if (key == "ape_order") o.ape_order = value.cast<std::string>();
      else if (key == "scale_fallbacks") o.scale_fallbacks = value.cast<bool>();
      else if (radii.count(key)) {
        // A number is a fraction of S (as "0.125"); a string may say "70px".
        const std::string text = py::isinstance<py::str>(value) ? value.cast<std::string>()
                                                                : py::str(value).cast<std::string>();
        if (key == "d_sp_pos") o.d_sp_pos = text;
        if (key == "d_sp_neg") o.d_sp_neg = text;
        if (key == "d_ex") o.d_ex = text;
        if (key == "d_sp_hard") o.d_sp_hard = text;
      } else {
        value_error("options: unknown key '" + key +
                    "' (known: size, patch_rule, patch_threshold, include_last_row_col, hard, order, "
                    "ape_order, d_sp_pos, d_sp_neg, d_ex, d_sp_hard, scale_fallbacks)");
      }
    } catch (const py::cast_error&) {
      value_error("options['" + key + "'] has the wrong type");
    }
  }
  return o;
}

gbmseg::PipelineOptions pipeline_arg(const std::string& mask_resize, bool resize_to_original, bool largest_contour) {
  gbmseg::PipelineOptions p;
  p.mask_resize = gbmseg::mask_resize_names().parse(mask_resize, "mask_resize");
  p.resize_to_original = resize_to_original;
  p.largest_contour = largest_contour;
  return p;
}

std::shared_ptr<gbmseg::PatchFeatureExtractor> features_arg(const py::object& features) {
  if (py::isinstance<dinov2::Dinov2Model>(features))
    return std::make_shared<gbmseg::Dinov2FeatureExtractor>(features.cast<std::shared_ptr<dinov2::Dinov2Model>>());
  if (py::isinstance<py::str>(features)) {
    gbmseg::BackendSpec spec;
    spec.kind = features.cast<std::string>();
    NEPHRO_CHECK(spec.kind != "dinov2", "features: pass a nephroseg.Dinov2 model for DINOv2 features");
    return gbmseg::make_feature_extractor(spec);
  }
  value_error("features must be a nephroseg.Dinov2 model or a backend name such as 'classical'");
}

std::shared_ptr<gbmseg::PointPromptSegmenter> segmenter_arg(const py::object& segmenter) {
  if (py::isinstance<sam::SamModel>(segmenter))
    return std::make_shared<gbmseg::SamPointSegmenter>(segmenter.cast<std::shared_ptr<sam::SamModel>>());
  if (py::isinstance<py::str>(segmenter)) {
    gbmseg::BackendSpec spec;
    spec.kind = segmenter.cast<std::string>();
    NEPHRO_CHECK(spec.kind != "sam", "segmenter: pass a nephroseg.Sam model for SAM");
    return gbmseg::make_point_segmenter(spec);
  }
  value_error("segmenter must be a nephroseg.Sam model or a backend name such as 'classical'");
}

py::array points_to_numpy(const Points& points) {
  py::array_t<int32_t> a(std::vector<py::ssize_t>{static_cast<py::ssize_t>(points.size()), 2});
  auto r = a.mutable_unchecked<2>();
  for (size_t i = 0; i < points.size(); ++i) {
    r(i, 0) = points[i].x;
    r(i, 1) = points[i].y;
  }
  return std::move(a);
}

py::array indices_to_numpy(const gbmseg::PatchIndices& idx) {
  py::array_t<int64_t> a(static_cast<py::ssize_t>(idx.size()));
  std::copy(idx.begin(), idx.end(), a.mutable_data());
  return std::move(a);
}

// The stages under the names of <name>.prompts.json's "stages" (gbmseg/prompts_json.h).
py::dict prompts_to_dict(const gbmseg::PromptResult& p) {
  py::dict d;
  gbmseg::for_each_prompt_stage(p, [&d](const char* name, const auto& value) {
    using T = std::decay_t<decltype(value)>;
    if constexpr (std::is_same_v<T, gbmseg::Points>) {
      d[name] = points_to_numpy(value);
    } else if constexpr (std::is_same_v<T, gbmseg::PatchIndices>) {
      d[name] = indices_to_numpy(value);
    } else {
      d[name] = value;
    }
  });
  return d;
}

py::dict segment_to_dict(const gbmseg::SegmentResult& r) {
  py::dict d;
  d["mask"] = mat_to_numpy(r.mask);
  d["mask_working"] = mat_to_numpy(r.mask_working);
  d["image_working"] = mat_to_numpy(r.image_working);
  d["original_size"] = py::make_tuple(r.original_height, r.original_width);
  py::array_t<float> pts(std::vector<py::ssize_t>{static_cast<py::ssize_t>(r.points.size()), 2});
  auto pr = pts.mutable_unchecked<2>();
  for (size_t i = 0; i < r.points.size(); ++i) {
    pr(i, 0) = r.points[i].x;
    pr(i, 1) = r.points[i].y;
  }
  d["points"] = pts;
  py::array_t<int32_t> labels(static_cast<py::ssize_t>(r.labels.size()));
  std::copy(r.labels.begin(), r.labels.end(), labels.mutable_data());
  d["labels"] = labels;
  d["prompts"] = prompts_to_dict(r.prompts);
  py::dict t;
  t["resize"] = r.timings.resize;
  t["features"] = r.timings.features;
  t["prompts"] = r.timings.prompts;
  t["segment"] = r.timings.segment;
  t["postprocess"] = r.timings.postprocess;
  t["total"] = r.timings.total;
  d["timings"] = t;
  return d;
}

// The raw 8-bit reference mask (1-4 channels, values kept: the patch rule sees them);
// a bool mask becomes 0/255.
cv::Mat reference_mask_arg(const py::handle& obj, py::object& keep) {
  if (!py::isinstance<py::array>(obj)) value_error("mask must be a numpy array (HxW bool/uint8 or HxWxC uint8)");
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (a.dtype().kind() == 'b') return mask_arg(obj, "mask");
  if (!(a.dtype().kind() == 'u' && a.itemsize() == 1))
    value_error("mask must have dtype uint8 or bool, got " + py::str(a.dtype()).cast<std::string>());
  if (!(a.ndim() == 2 || (a.ndim() == 3 && a.shape(2) >= 1 && a.shape(2) <= 4)))
    value_error("mask must be HxW or HxWxC (C <= 4)");
  if (a.shape(0) == 0 || a.shape(1) == 0) value_error("mask is empty");
  a = py::array::ensure(a, py::array::c_style);
  keep = a;
  const int c = a.ndim() == 2 ? 1 : static_cast<int>(a.shape(2));
  return cv::Mat(static_cast<int>(a.shape(0)), static_cast<int>(a.shape(1)), CV_8UC(c), const_cast<void*>(a.data()));
}

struct PyGbmSeg {
  std::unique_ptr<gbmseg::GbmSegPipeline> pipeline;
};

// set_reference (add = false) or add_reference (true) from numpy arrays, GIL released.
void give_reference(PyGbmSeg& self, const py::handle& image, const py::handle& mask, bool add) {
  py::object keep_img, keep_mask;
  const cv::Mat img = image_arg(image, "image", keep_img, 3);
  const cv::Mat msk = reference_mask_arg(mask, keep_mask);
  py::gil_scoped_release release;
  if (add) {
    self.pipeline->add_reference(img, msk);
  } else {
    self.pipeline->set_reference(img, msk);
  }
}

py::dict record_to_dict(const workloads::GbmSegTargetRecord& r) {
  py::dict d;
  d["name"] = r.name;
  d["path"] = r.path;
  d["ground_truth"] = r.ground_truth;
  d["status"] = item_status_names().name(r.status);
  d["message"] = r.message;
  d["width"] = r.width;
  d["height"] = r.height;
  d["n_pos"] = r.n_pos;
  d["n_neg"] = r.n_neg;
  d["n_warnings"] = r.n_warnings;
  d["total_s"] = r.t_total;
  if (r.thickness) {
    const workloads::GbmSegThickness& t = *r.thickness;
    py::dict th;
    th["nm_per_pixel"] = t.nm_per_pixel;
    th["calibration_source"] = t.calibration_source;
    th["oi_harmonic_3d_nm"] = t.oi_harmonic_3d_nm;
    th["oi_harmonic_2d_nm"] = t.oi.harmonic_mean;
    th["direct_median_nm"] = t.direct.median;
    th["direct_mean_nm"] = t.direct.mean;
    th["n_intercepts"] = t.oi.n;
    th["class"] = t.verdict;
    th["note"] = t.note;
    d["thickness"] = th;
  } else {
    d["thickness"] = py::none();
  }
  if (r.metrics) {
    d["dice"] = r.metrics->dice;
    d["iou"] = r.metrics->iou;
    d["precision"] = r.metrics->precision;
    d["recall"] = r.metrics->recall;
  }
  return d;
}

}  // namespace

void bind_gbmseg(py::module_& m) {
  py::class_<PyGbmSeg>(m, "GbmSeg",
                       "GBMSeg one-shot segmentation: one reference image + mask, then any number of\n"
                       "targets. The reference features are computed once (set_reference) and reused;\n"
                       "they can be read (reference_features) and given back to another GbmSeg\n"
                       "(set_reference_working).\n\n"
                       "    g = nephroseg.GbmSeg(dino, sam, preset='authors-code')\n"
                       "    g.set_reference(ref_rgb, ref_mask)\n"
                       "    r = g.segment(target_rgb)   # dict: mask, points, labels, prompts{...}, timings\n")
      .def(py::init([](const py::object& features, const py::object& segmenter, const std::string& preset,
                       const std::string& ablation, const py::object& options, const std::string& mask_resize,
                       bool resize_to_original, bool largest_contour) {
             const gbmseg::PromptOptions opt = gbmseg::resolve_prompt_options(overrides_arg(preset, ablation, options));
             auto p = std::make_unique<PyGbmSeg>();
             p->pipeline = std::make_unique<gbmseg::GbmSegPipeline>(
                 features_arg(features), segmenter_arg(segmenter), opt,
                 pipeline_arg(mask_resize, resize_to_original, largest_contour));
             return p;
           }),
           py::arg("features"), py::arg("segmenter"), py::kw_only(), py::arg("preset") = "",
           py::arg("ablation") = "", py::arg("options") = py::none(), py::arg("mask_resize") = "nearest",
           py::arg("resize_to_original") = true, py::arg("largest_contour") = false,
           "features: a nephroseg.Dinov2 or 'classical'; segmenter: a nephroseg.Sam or 'classical'.\n"
           "preset: 'authors-code' (default) | 'paper' | 'authors-c0947' | 'authors-2023'; ablation:\n"
           "a row name of the paper's ablation; options: a dict overriding size, patch_rule,\n"
           "patch_threshold, include_last_row_col, hard, order, ape_order, d_sp_pos, d_sp_neg, d_ex,\n"
           "d_sp_hard (fraction of S, or 'NNpx'), scale_fallbacks: the CLI's options of those names.\n"
           "mask_resize: 'nearest' | 'bilinear'.")
      .def(
          "set_reference",
          [](PyGbmSeg& self, const py::handle& image, const py::handle& mask) {
            give_reference(self, image, mask, /*add=*/false);
          },
          py::arg("image"), py::arg("mask"),
          "Sets the reference: HxWx3 uint8 RGB and its GBM mask (uint8 HxW or HxWxC, raw values\n"
          "kept as the CLI reads them; bool becomes 0/255). Computes the reference features.")
      .def(
          "add_reference",
          [](PyGbmSeg& self, const py::handle& image, const py::handle& mask) {
            give_reference(self, image, mask, /*add=*/true);
          },
          py::arg("image"), py::arg("mask"),
          "Adds one more reference to the pool (few-shot; after set_reference): forward and\n"
          "backward matching then run against every pooled reference patch.")
      .def_property_readonly(
          "reference_count", [](const PyGbmSeg& s) { return s.pipeline->reference_count(); },
          "number of pooled references")
      .def(
          "set_reference_working",
          [](PyGbmSeg& self, const py::handle& image_working, const py::handle& mask_working,
             const py::handle& features) {
            py::object keep_img, keep_mask;
            const cv::Mat img = image_arg(image_working, "image_working", keep_img, 3);
            const cv::Mat msk = reference_mask_arg(mask_working, keep_mask);
            py::array_t<float> f = float_array_arg(features, "features", 2);
            cv::Mat fm(static_cast<int>(f.shape(0)), static_cast<int>(f.shape(1)), CV_32FC1, const_cast<float*>(f.data()));
            const at::Tensor ft = io::mat_to_tensor(fm, /*squeeze=*/true);  // owned: the pipeline keeps it
            py::gil_scoped_release release;
            self.pipeline->set_reference_working(img.clone(), msk.clone(), ft);
          },
          py::arg("image_working"), py::arg("mask_working"), py::arg("features"),
          "Sets the reference from an earlier GbmSeg's reference_image_working,\n"
          "reference_mask_working and reference_features (no feature pass). The arrays are copied.")
      .def_property_readonly("has_reference", [](const PyGbmSeg& s) { return s.pipeline->has_reference(); })
      .def_property_readonly(
          "reference_features", [](const PyGbmSeg& s) { return tensor_to_numpy(s.pipeline->reference_features()); },
          "float32 [G*G, D] features of the reference (after set_reference)")
      .def_property_readonly(
          "reference_image_working", [](const PyGbmSeg& s) { return mat_to_numpy(s.pipeline->reference_image_working()); },
          "the S x S RGB reference the models saw")
      .def_property_readonly(
          "reference_mask_working", [](const PyGbmSeg& s) { return mat_to_numpy(s.pipeline->reference_mask_working()); },
          "the S x S reference mask (raw values)")
      .def_property_readonly("reference_seconds", [](const PyGbmSeg& s) { return s.pipeline->reference_seconds(); })
      .def_property_readonly("size", [](const PyGbmSeg& s) { return s.pipeline->options().size; },
                             "working size S")
      .def(
          "segment",
          [](const PyGbmSeg& self, const py::handle& target) {
            NEPHRO_CHECK(self.pipeline->has_reference(), "GbmSeg.segment: call set_reference() first");
            py::object keep;
            const cv::Mat img = image_arg(target, "target", keep, 3);
            gbmseg::SegmentResult r;
            {
              py::gil_scoped_release release;
              r = self.pipeline->segment(img);
            }
            return segment_to_dict(r);
          },
          py::arg("target"),
          "Segments one HxWx3 uint8 RGB target. Returns a dict: mask (uint8 0/255, original size\n"
          "unless resize_to_original=False), mask_working, image_working (S x S), points (float32\n"
          "[N, 2], S x S pixels) and labels (int32 [N]) given to the segmenter, prompts (every\n"
          "stage: patch indices and int32 [K, 2] points, warnings), timings (seconds).");

  const workloads::GbmSegBatchOptions batch_defaults;  // the keyword defaults are the workload's
  m.def(
      "gbmseg_batch",
      [](const std::string& reference_image, const std::string& reference_mask, const std::string& targets,
         const std::string& out_dir, const py::object& features, const py::object& segmenter,
         const std::string& dinov2_checkpoint, const std::string& dinov2_type, const std::string& dinov2_config,
         const std::string& sam_checkpoint, const std::string& sam_type, const std::string& sam_config,
         const std::string& ground_truth, const std::string& preset,
         const std::string& ablation, const py::object& options, const std::string& mask_resize,
         bool resize_to_original, bool largest_contour, bool overwrite, const py::object& progress,
         const std::vector<std::pair<std::string, std::string>>& more_references, const std::string& measure_mode,
         const std::string& nm_per_pixel, const std::string& thickness_range, const std::string& shard,
         const std::string& precision, bool force_precision) {
        workloads::GbmSegBatchOptions b;
        // The model backends run in the precision asked for (resolved for this CPU, as the
        // CLI's --precision); run.json and prompts.json name it with the backends.
        const Precision resolved = precision_arg(precision, force_precision);
        b.shard = shard_arg(shard);
        b.measure.mode = workloads::gbmseg_measure_mode_names().parse(measure_mode, "gbmseg_batch: measure");
        b.measure.nm_per_pixel = nm_per_pixel;
        if (!thickness_range.empty()) b.measure.range = measure::find_reference_range(thickness_range);
        if (!more_references.empty()) {
          b.references.push_back({reference_image, reference_mask});
          for (const auto& [img, msk] : more_references) b.references.push_back({img, msk});
        }
        gbmseg::PromptPreset p;
        std::optional<gbmseg::AblationRow> row;
        b.prompts = gbmseg::resolve_prompt_options(overrides_arg(preset, ablation, options), &p, &row);
        b.preset = p;
        b.ablation = row;
        b.pipeline = pipeline_arg(mask_resize, resize_to_original, largest_contour);
        b.reference_image = reference_image;
        b.reference_mask = reference_mask;
        b.targets = targets;
        b.ground_truth = ground_truth;
        b.out_dir = out_dir;
        b.overwrite = overwrite;
        // A ready model object, or a backend kind built by the library from a checkpoint.
        if (py::isinstance<py::str>(features)) {
          b.features = {features.cast<std::string>(), dinov2_checkpoint, dinov2_config.empty() ? dinov2_type : "",
                        dinov2_config, false, 0, resolved};
        } else {
          b.features_backend = features_arg(features);
        }
        if (py::isinstance<py::str>(segmenter)) {
          b.segmenter = {segmenter.cast<std::string>(), sam_checkpoint, sam_config.empty() ? sam_type : "", sam_config,
                         false, 0, resolved};
        } else {
          b.segmenter_backend = segmenter_arg(segmenter);
        }
        workloads::EventSink callback;
        if (!progress.is_none()) {
          callback = [&progress](const workloads::Event& e) {
            const auto* d = std::any_cast<const workloads::GbmSegEventDetail*>(&e.detail);
            if (e.kind != workloads::Event::Kind::kItemFinished || !d || !(*d)->record) return;
            py::gil_scoped_acquire acquire;
            progress(e.index, e.total, record_to_dict(*(*d)->record));
          };
        }
        workloads::GbmSegBatchResult r;
        {
          py::gil_scoped_release release;
          r = workloads::run_gbmseg_batch(b, callback);
        }
        py::dict d;
        py::list rows;
        for (const auto& t : r.targets) rows.append(record_to_dict(t));
        d["targets"] = rows;
        d["segmented"] = r.segmented;
        d["skipped"] = r.skipped;
        d["failed"] = r.failed;
        d["summary_csv"] = r.summary_csv;
        d["run_json"] = r.run_json;
        d["report_html"] = r.report_html;
        d["references"] = r.references;
        d["warnings"] = r.warnings;
        d["features"] = r.features_name;
        d["segmenter"] = r.segmenter_name;
        if (r.means) {
          py::dict mm;
          mm["n"] = r.means->n;
          mm["dice"] = r.means->dice;
          mm["iou"] = r.means->iou;
          mm["precision"] = r.means->precision;
          mm["recall"] = r.means->recall;
          mm["dice_authors_weighted"] = r.means->dice_authors_weighted;
          d["means"] = mm;
        } else {
          d["means"] = py::none();
        }
        return d;
      },
      py::arg("reference_image"), py::arg("reference_mask"), py::arg("targets"), py::arg("out_dir"), py::kw_only(),
      py::arg("features") = batch_defaults.features.kind, py::arg("segmenter") = batch_defaults.segmenter.kind,
      py::arg("dinov2_checkpoint") = "", py::arg("dinov2_type") = batch_defaults.features.model_type,
      py::arg("dinov2_config") = "", py::arg("sam_checkpoint") = "",
      py::arg("sam_type") = batch_defaults.segmenter.model_type, py::arg("sam_config") = "",
      py::arg("ground_truth") = "", py::arg("preset") = "", py::arg("ablation") = "", py::arg("options") = py::none(),
      py::arg("mask_resize") = gbmseg::mask_resize_names().name(batch_defaults.pipeline.mask_resize),
      py::arg("resize_to_original") = batch_defaults.pipeline.resize_to_original,
      py::arg("largest_contour") = batch_defaults.pipeline.largest_contour,
      py::arg("overwrite") = false, py::arg("progress") = py::none(),
      py::arg("more_references") = std::vector<std::pair<std::string, std::string>>{}, py::arg("measure") = workloads::gbmseg_measure_mode_names().name(batch_defaults.measure.mode),
      py::arg("nm_per_pixel") = batch_defaults.measure.nm_per_pixel, py::arg("thickness_range") = "",
      py::arg("shard") = "", py::arg("precision") = "fp32", py::arg("force_precision") = false,
      "GBMSeg on a folder (or one image), exactly as `nephroseg gbmseg`: writes <name>.png,\n"
      "<name>.prompts.json, <name>.overlay.png, summary.csv and run.json (atomically) under\n"
      "out_dir, resumes (targets with outputs are skipped unless overwrite), records failures.\n"
      "features / segmenter: a loaded nephroseg.Dinov2 / nephroseg.Sam, or a backend kind\n"
      "('dinov2' with dinov2_checkpoint + dinov2_type or a dinov2_config JSON file, 'sam' with\n"
      "sam_checkpoint + sam_type or sam_config,\n"
      "'classical'). precision: 'fp32' | 'bf16' | 'int8' | 'auto' for the model backends, as the\n"
      "CLI's --precision (recorded in run.json's backends). shard: 'K/N' or 'auto' (then\n"
      "merge_shards). progress(index, total, record) is called after each target. Returns a\n"
      "dict: targets (one dict per target), segmented, skipped, failed, means, summary_csv, ...");
}

}  // namespace nephroseg::python
