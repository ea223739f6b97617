// python/dinov2.cpp: nephroseg.Dinov2 (DINOv2 ViT-S/B/L/g /14, with or without registers).
#include "common.h"
#include "nephroseg/dinov2/dinov2.h"

namespace nephroseg::python {

namespace {

dinov2::Dinov2Config dinov2_config_arg(const std::string& model_type, const py::object& config) {
  std::string path;
  const auto text = json_text_arg(config, "config", &path);
  if (text) return dinov2::Dinov2Config::from_json_text(*text, "config");
  if (!path.empty()) return dinov2::Dinov2Config::from_json(path);
  return dinov2::Dinov2Config::preset(model_type);
}

}  // namespace

void bind_dinov2(py::module_& m) {
  py::class_<dinov2::Dinov2Model, std::shared_ptr<dinov2::Dinov2Model>>(
      m, "Dinov2",
      "A DINOv2 backbone with immutable weights (official dinov2_vit*14[_reg4]_pretrain.pth).\n\n"
      "    dino = nephroseg.Dinov2.load('dinov2_vitg14_pretrain.pth', model_type='vitg14')\n"
      "    tokens, gh, gw = dino.patch_features(image, size=560)   # float32 [gh*gw, D]\n\n"
      "Calls release the GIL and may run from several threads at once.")
      .def_static(
          "load",
          [](const std::string& checkpoint, const std::string& model_type, const py::object& config,
             const std::string& precision, bool force_precision) {
            const dinov2::Dinov2Config c = dinov2_config_arg(model_type, config);
            const Precision p = precision_arg(precision, force_precision);
            py::gil_scoped_release release;
            return dinov2::Dinov2Model::load(checkpoint, c, p);
          },
          py::arg("checkpoint"), py::arg("model_type") = "vitg14", py::arg("config") = py::none(),
          py::arg("precision") = "fp32", py::arg("force_precision") = false,
          "Loads an official checkpoint. model_type: vits14 | vitb14 | vitl14 | vitg14 (+ '_reg4');\n"
          "config (takes precedence): a dict of Dinov2Config fields or a JSON file path.\n"
          "precision: 'fp32' | 'bf16' | 'int8' | 'auto' (docs/precision.md).")
      .def_static(
          "random",
          [](const std::string& model_type, const py::object& config, uint64_t seed,
             const std::string& precision, bool force_precision) {
            const dinov2::Dinov2Config c = dinov2_config_arg(model_type, config);
            const Precision p = precision_arg(precision, force_precision);
            py::gil_scoped_release release;
            return dinov2::Dinov2Model::random(c, seed, p);
          },
          py::arg("model_type") = "vits14", py::arg("config") = py::none(), py::arg("seed") = 0,
          py::arg("precision") = "fp32", py::arg("force_precision") = false,
          "A model with random weights (benchmarks, tests).")
      .def_static("preset_names", &dinov2::Dinov2Config::preset_names, "The valid model_type names.")
      .def_property_readonly(
          "config", [](const dinov2::Dinov2Model& d) { return json_loads(d.config().to_json()); },
          "The hyper-parameters as a dict.")
      .def_property_readonly(
          "precision", [](const dinov2::Dinov2Model& d) { return precision_names().name(d.precision()); },
          "'fp32' | 'bf16' | 'int8'.")
      .def(
          "patch_features",
          [](const dinov2::Dinov2Model& self, const py::handle& image, int64_t size) {
            py::object keep;
            const cv::Mat img = image_arg(image, "image", keep, /*channels=*/3);
            const at::Tensor t = image_tensor(img);
            dinov2::PatchFeatures f;
            {
              py::gil_scoped_release release;
              f = self.patch_features(t, size);
            }
            return py::make_tuple(tensor_to_numpy(f.tokens), f.grid_h, f.grid_w);
          },
          py::arg("image"), py::arg("size") = 0,
          "Normalised patch tokens of one HxWx3 uint8 RGB image: (tokens float32 [gh*gw, D],\n"
          "gh, gw), token k = patch (row k // gw, column k % gw). size > 0 resizes to size x size\n"
          "(PIL bicubic) first and must be a multiple of 14; size 0 needs sides that are.");
}

}  // namespace nephroseg::python
