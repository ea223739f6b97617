// python/glomsam.cpp: nephroseg.GlomSam (GlomSAM inference).
#include "common.h"
#include "nephroseg/glomsam/glomsam.h"

namespace nephroseg::python {

namespace {

glomsam::GlomSamConfig glomsam_config_arg(const py::object& config) {
  std::string path;
  const auto text = json_text_arg(config, "config", &path);
  if (text) return glomsam::GlomSamConfig::from_json_text(*text, "config");
  if (!path.empty()) return glomsam::GlomSamConfig::preset(path);  // a preset name or a JSON file
  return glomsam::GlomSamConfig::official();
}

}  // namespace

void bind_glomsam(py::module_& m) {
  py::class_<glomsam::GlomSamModel, std::shared_ptr<glomsam::GlomSamModel>>(
      m, "GlomSam",
      "GlomSAM (MedSAM ViT-B encoder + EVP prompt generator + ResNet branch + UNet rough mask)\n"
      "for multi-glomerular segmentation of immunofluorescence images.\n\n"
      "    g = nephroseg.GlomSam.load('glomsam.pth')             # config: 'official' by default\n"
      "    r = g.predict(image)                                   # automatic box from the rough mask\n"
      "    r['mask']  # uint8 0/1 [H, W];  r['logits'] float32 [H, W];  r['boxes'] per tile\n\n"
      "predict() releases the GIL.")
      .def_static(
          "load",
          [](const std::string& checkpoint, const py::object& config, const std::string& precision,
             bool force_precision) {
            const glomsam::GlomSamConfig c =
                config.is_none() ? glomsam::GlomSamModel::config_for(checkpoint) : glomsam_config_arg(config);
            const Precision p = precision_arg(precision, force_precision);
            py::gil_scoped_release release;
            return glomsam::GlomSamModel::load(checkpoint, c, p);
          },
          py::arg("checkpoint"), py::arg("config") = py::none(), py::arg("precision") = "fp32",
          py::arg("force_precision") = false,
          "Loads a GlomSAM checkpoint. config: None (the config stored in the file, else\n"
          "'official'), a preset name ('official' | 'tiny'), a JSON file path or a dict.\n"
          "precision: 'fp32' | 'bf16' | 'int8' | 'auto' for the ViT blocks (inference only).")
      .def_static(
          "create",
          [](const py::object& config, uint64_t seed) {
            const glomsam::GlomSamConfig c = glomsam_config_arg(config);
            py::gil_scoped_release release;
            return glomsam::GlomSamModel::create(c, seed);
          },
          py::arg("config") = "tiny", py::arg("seed") = 0, "A randomly initialised model (tests, training).")
      .def_property_readonly(
          "config", [](const glomsam::GlomSamModel& g) { return json_loads(g.config().to_json()); })
      .def_property_readonly(
          "precision", [](const glomsam::GlomSamModel& g) { return precision_names().name(g.precision()); })
      .def("save", &glomsam::GlomSamModel::save, py::arg("path"), "Writes the weights as a .pth checkpoint.")
      .def(
          "predict",
          [](const glomsam::GlomSamModel& self, const py::handle& image, const py::object& box,
             int64_t tile_overlap) {
            py::object keep;
            const cv::Mat img = image_arg(image, "image", keep, 3);
            glomsam::PredictOptions o;
            if (!box.is_none()) o.box = box_arg(box, "box");
            o.tile_overlap = tile_overlap;
            glomsam::PredictResult r;
            {
              py::gil_scoped_release release;
              r = self.predict(img, o);
            }
            py::dict d;
            d["mask"] = tensor_to_numpy(r.mask);
            d["logits"] = tensor_to_numpy(r.logits);
            py::list boxes;
            for (const auto& b : r.boxes) boxes.append(py::make_tuple(b[0], b[1], b[2], b[3]));
            d["boxes"] = boxes;
            d["seconds"] = r.seconds;
            return d;
          },
          py::arg("image"), py::arg("box") = py::none(), py::arg("tile_overlap") = 128,
          "Segments a HxWx3 uint8 RGB image (large images in overlapping tiles). box: x0, y0, x1,\n"
          "y1 in pixels, or None for the automatic box. Returns dict(mask uint8 0/1 [H, W],\n"
          "logits float32 [H, W], boxes, seconds).");
}

}  // namespace nephroseg::python
