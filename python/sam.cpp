// python/sam.cpp: nephroseg.Sam (SAM / MedSAM), ImageEmbedding, SamResult.
#include <cmath>

#include "common.h"
#include "nephroseg/io/tensor_mat.h"
#include "nephroseg/sam/automask.h"
#include "nephroseg/sam/sam.h"

namespace nephroseg::python {

namespace {

sam::SamConfig sam_config_arg(const std::string& model_type, const py::object& config) {
  std::string path;
  const auto text = json_text_arg(config, "config", &path);
  if (text) return sam::SamConfig::from_json_text(*text, "config");
  if (!path.empty()) return sam::SamConfig::from_json(path);
  return sam::SamConfig::preset(model_type);
}

// segment-anything's record of one generated mask (SamAutomaticMaskGenerator.generate).
py::dict automask_record(const sam::AutoMask& m) {
  const auto ints = [](const std::array<double, 4>& b) {
    return py::make_tuple(std::llround(b[0]), std::llround(b[1]), std::llround(b[2]), std::llround(b[3]));
  };
  py::dict d;
  d["segmentation"] = tensor_to_numpy(m.segmentation);
  d["area"] = m.area;
  d["bbox"] = py::list(ints(m.bbox));
  d["predicted_iou"] = m.predicted_iou;
  py::list xy, points;
  xy.append(m.point_coords[0]);
  xy.append(m.point_coords[1]);
  points.append(xy);
  d["point_coords"] = points;  // a list of one point, as segment-anything gives it
  d["stability_score"] = m.stability_score;
  d["crop_box"] = py::list(ints(m.crop_box));
  return d;
}

py::list generate_masks_py(const sam::SamModel& self, const py::handle& image, const sam::AutomaskOptions& o) {
  py::object keep;
  const cv::Mat img = image_arg(image, "image", keep, /*channels=*/3);
  const at::Tensor t = image_tensor(img);
  std::vector<sam::AutoMask> masks;
  {
    py::gil_scoped_release release;
    masks = sam::generate_masks(self, t, o);
  }
  py::list out;
  for (const auto& m : masks) out.append(automask_record(m));
  return out;
}

const char* kSamDoc = R"(Segment Anything (SAM ViT-B/L/H) or MedSAM with immutable weights.

    sam = nephroseg.Sam.load("sam_vit_b_01ec64.pth", model_type="vit_b")
    emb = sam.encode(image)                    # HxWx3 uint8 RGB; one encoder pass
    r = sam.predict(emb, points=[[120, 80]], labels=[1], multimask=True)
    r.masks          # bool [C, H, W];  r.iou  float32 [C];  r.low_res_logits float32 [C, h, w]
    r = sam.predict(emb, box=[10, 20, 300, 260], mask_input=r.low_res_logits[r.best_index][None])

Coordinates are original-image pixels (x right, y down). encode() and predict() release
the GIL; one Sam and one embedding may be used from several threads at once.)";

}  // namespace

void bind_sam(py::module_& m) {
  const sam::AutomaskOptions automask_defaults;  // the keyword defaults are the generator's
  py::class_<sam::ImageEmbedding>(m, "ImageEmbedding",
                                  "The SAM encoder output of one image (from Sam.encode); reusable for any\n"
                                  "number of predict() calls, from any thread.")
      .def_property_readonly(
          "embedding", [](const sam::ImageEmbedding& e) { return tensor_to_numpy(e.embedding); },
          "float32 [1, prompt_embed_dim, grid, grid] (shares the C++ buffer)")
      .def_property_readonly("original_size", [](const sam::ImageEmbedding& e) { return py::make_tuple(e.original_size[0], e.original_size[1]); },
                             "(H, W) of the encoded image")
      .def_property_readonly("input_size", [](const sam::ImageEmbedding& e) { return py::make_tuple(e.input_size[0], e.input_size[1]); },
                             "(h, w) after resizing, before padding")
      .def_readonly("encode_seconds", &sam::ImageEmbedding::encode_seconds, "wall time of the encoder pass");

  py::class_<sam::SamResult>(m, "SamResult",
                             "Masks of one prompt (Sam.predict) or a batch of boxes (Sam.predict_boxes,\n"
                             "where every array gains a leading batch dimension B).")
      .def_property_readonly(
          "masks", [](const sam::SamResult& r) { return tensor_to_numpy(r.masks); },
          "bool [C, H, W] at the original image size")
      .def_property_readonly(
          "iou", [](const sam::SamResult& r) { return tensor_to_numpy(r.iou); }, "float32 [C] predicted IoU")
      .def_property_readonly(
          "low_res_logits", [](const sam::SamResult& r) { return tensor_to_numpy(r.low_res_logits); },
          "float32 [C, low_res, low_res] decoder logits (feed one back as mask_input=logits[k][None])")
      .def_property_readonly(
          "mask_logits", [](const sam::SamResult& r) { return tensor_to_numpy(r.mask_logits); },
          "float32 [C, H, W]; masks == mask_logits > mask_threshold")
      .def_property_readonly("best_index", &sam::SamResult::best_index,
                             "index of the mask with the highest predicted IoU")
      .def_readonly("seconds", &sam::SamResult::seconds, "wall time of prompt encoder + decoder + postprocess");

  py::class_<sam::SamModel, std::shared_ptr<sam::SamModel>>(m, "Sam", kSamDoc)
      .def_static(
          "load",
          [](const std::string& checkpoint, const std::string& model_type, const py::object& config,
             const std::string& precision, bool force_precision) {
            const sam::SamConfig c = sam_config_arg(model_type, config);
            const Precision p = precision_arg(precision, force_precision);
            py::gil_scoped_release release;
            return sam::SamModel::load(checkpoint, c, p);
          },
          py::arg("checkpoint"), py::arg("model_type") = "vit_b", py::arg("config") = py::none(),
          py::arg("precision") = "fp32", py::arg("force_precision") = false,
          "Loads an official SAM/MedSAM checkpoint (.pth, no conversion).\n"
          "model_type: 'vit_b' | 'vit_l' | 'vit_h' | 'medsam'; config (takes precedence): a dict\n"
          "with the fields of segment-anything's build_sam, or a JSON file path (e.g. a golden\n"
          "sam_tiny.json). Keys or shapes that do not fit raise ValueError listing them.\n"
          "precision: 'fp32' | 'bf16' | 'int8' | 'auto' for the image encoder (docs/precision.md);\n"
          "bf16 on a CPU without native bf16, and int8 on one without VNNI / AMX-INT8, "
          "raise unless force_precision.")
      .def_static(
          "random",
          [](const std::string& model_type, const py::object& config, uint64_t seed,
             const std::string& precision, bool force_precision) {
            const sam::SamConfig c = sam_config_arg(model_type, config);
            const Precision p = precision_arg(precision, force_precision);
            py::gil_scoped_release release;
            return sam::SamModel::random(c, seed, p);
          },
          py::arg("model_type") = "vit_b", py::arg("config") = py::none(), py::arg("seed") = 0,
          py::arg("precision") = "fp32", py::arg("force_precision") = false,
          "A model with random weights (benchmarks, tests); deterministic in seed.")
      .def_property_readonly(
          "config", [](const sam::SamModel& s) { return json_loads(s.config().to_json()); },
          "The hyper-parameters as a dict (accepted back by load(config=...)).")
      .def_property_readonly(
          "precision", [](const sam::SamModel& s) { return precision_names().name(s.precision()); },
          "The image encoder's precision: 'fp32' | 'bf16' | 'int8'.")
      .def(
          "encode",
          [](const sam::SamModel& self, const py::handle& image) {
            py::object keep;
            const cv::Mat img = image_arg(image, "image", keep, /*channels=*/0);
            const at::Tensor t = image_tensor(img);
            py::gil_scoped_release release;
            return self.encode(t);
          },
          py::arg("image"),
          "Runs the image encoder once: image is HxWx3 uint8 RGB (or HxW uint8 grey). A\n"
          "C-contiguous array is read in place; other layouts are copied once. Returns an\n"
          "ImageEmbedding.")
      .def(
          "predict",
          [](const sam::SamModel& self, const sam::ImageEmbedding& embedding, const py::object& points,
             const py::object& labels, const py::object& box, const py::object& mask_input, bool multimask) {
            sam::SamPrompt prompt;
            prompt.multimask = multimask;
            if (!points.is_none()) prompt.points = points_arg(points, "points");
            if (!labels.is_none()) {
              py::array_t<int, py::array::c_style | py::array::forcecast> l;
              try {
                l = py::array_t<int, py::array::c_style | py::array::forcecast>::ensure(labels);
              } catch (const py::error_already_set&) {
              }
              if (!l || l.ndim() > 1) value_error("labels must be a 1-D sequence of 1, 0 or -1");
              prompt.labels.assign(l.data(), l.data() + l.size());
            } else {
              prompt.labels.assign(prompt.points.size(), 1);
            }
            if (prompt.labels.size() != prompt.points.size())
              value_error("labels has " + std::to_string(prompt.labels.size()) + " entries but points has " +
                          std::to_string(prompt.points.size()));
            if (!box.is_none()) prompt.box = box_arg(box, "box");
            py::array_t<float> mask_keep;
            cv::Mat mask_mat;
            if (!mask_input.is_none()) {
              py::array a = py::reinterpret_borrow<py::array>(mask_input);
              const bool three = py::isinstance<py::array>(mask_input) && a.ndim() == 3;
              mask_keep = float_array_arg(mask_input, "mask_input", three ? 3 : 2);
              if (three && mask_keep.shape(0) != 1)
                value_error("mask_input must be [1, h, w] or [h, w] float32 logits, got " +
                            std::to_string(mask_keep.shape(0)) + " masks");
              const int h = static_cast<int>(mask_keep.shape(three ? 1 : 0));
              const int w = static_cast<int>(mask_keep.shape(three ? 2 : 1));
              mask_mat = cv::Mat(h, w, CV_32FC1, const_cast<float*>(mask_keep.data()));
              prompt.mask_input = io::mat_view(mask_mat, /*squeeze=*/true).unsqueeze(0);  // [1, h, w], no copy
            }
            py::gil_scoped_release release;
            return self.predict(embedding, prompt);
          },
          py::arg("embedding"), py::kw_only(), py::arg("points") = py::none(), py::arg("labels") = py::none(),
          py::arg("box") = py::none(), py::arg("mask_input") = py::none(), py::arg("multimask") = false,
          "Prompt encoder + mask decoder on an encoded image (no encoder pass).\n"
          "points: (N, 2) x, y in original pixels; labels: N of 1 (foreground), 0 (background),\n"
          "-1 (ignored), default all 1; box: x0, y0, x1, y1; mask_input: float32 [1, h, w] (or\n"
          "[h, w]) low-res logits, e.g. a previous result's low_res_logits[k][None];\n"
          "multimask: 3 masks instead of 1. At least one prompt is required. Returns SamResult.")
      .def(
          "generate_masks",
          [](const sam::SamModel& self, const py::handle& image, int points_per_side, int points_per_batch,
             double pred_iou_thresh, double stability_score_thresh, double stability_score_offset,
             double box_nms_thresh, int crop_n_layers, double crop_nms_thresh, double crop_overlap_ratio,
             int crop_n_points_downscale_factor, int min_mask_region_area, const std::string& output_type,
             bool include_image_edge) {
            sam::AutomaskOptions o;
            o.points_per_side = points_per_side;
            o.points_per_batch = points_per_batch;
            o.pred_iou_thresh = pred_iou_thresh;
            o.stability_score_thresh = stability_score_thresh;
            o.stability_score_offset = stability_score_offset;
            o.box_nms_thresh = box_nms_thresh;
            o.crop_n_layers = crop_n_layers;
            o.crop_nms_thresh = crop_nms_thresh;
            o.crop_overlap_ratio = crop_overlap_ratio;
            o.crop_n_points_downscale_factor = crop_n_points_downscale_factor;
            o.min_mask_region_area = min_mask_region_area;
            o.output_type = sam::automask_output_names().parse(output_type, "output_type");
            o.include_image_edge = include_image_edge;
            return generate_masks_py(self, image, o);
          },
          py::arg("image"), py::kw_only(), py::arg("points_per_side") = automask_defaults.points_per_side,
          py::arg("points_per_batch") = automask_defaults.points_per_batch,
          py::arg("pred_iou_thresh") = automask_defaults.pred_iou_thresh,
          py::arg("stability_score_thresh") = automask_defaults.stability_score_thresh,
          py::arg("stability_score_offset") = automask_defaults.stability_score_offset,
          py::arg("box_nms_thresh") = automask_defaults.box_nms_thresh,
          py::arg("crop_n_layers") = automask_defaults.crop_n_layers,
          py::arg("crop_nms_thresh") = automask_defaults.crop_nms_thresh,
          py::arg("crop_overlap_ratio") = automask_defaults.crop_overlap_ratio,
          py::arg("crop_n_points_downscale_factor") = automask_defaults.crop_n_points_downscale_factor,
          py::arg("min_mask_region_area") = automask_defaults.min_mask_region_area,
          py::arg("output_type") = sam::automask_output_names().name(automask_defaults.output_type),
          py::arg("include_image_edge") = automask_defaults.include_image_edge,
          "Automatic masks (segment-anything's SamAutomaticMaskGenerator, as `nephroseg sam\n"
          "--auto`): image is HxWx3 uint8 RGB; the keywords are the generator's options\n"
          "(samapi's defaults; output_type 'Multi-mask (best quality)' with\n"
          "include_image_edge=True is segment-anything's generator). Returns a list of dicts with\n"
          "segment-anything's keys: segmentation (HxW bool), area, bbox [x, y, w, h],\n"
          "predicted_iou, point_coords [[x, y]], stability_score, crop_box [x, y, w, h]; in the\n"
          "generator's order. Releases the GIL while it runs.")
      .def(
          "predict_boxes",
          [](const sam::SamModel& self, const sam::ImageEmbedding& embedding, const py::handle& boxes,
             bool multimask) {
            py::array_t<float> b = float_array_arg(boxes, "boxes", 2);
            if (b.shape(1) != 4) value_error("boxes must be [B, 4] float32 (x0, y0, x1, y1)");
            cv::Mat view(static_cast<int>(b.shape(0)), 4, CV_32FC1, const_cast<float*>(b.data()));
            const at::Tensor t = io::mat_view(view, /*squeeze=*/true);
            py::gil_scoped_release release;
            return self.predict_boxes(embedding, t, multimask);
          },
          py::arg("embedding"), py::arg("boxes"), py::arg("multimask") = false,
          "A batch of box prompts (float32 [B, 4], XYXY original pixels) in one decoder pass;\n"
          "the result's arrays are [B, C, ...].");
}

}  // namespace nephroseg::python
