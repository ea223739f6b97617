// python/common.h: numpy <-> cv::Mat / at::Tensor conversions and argument checks shared
// by the binding files (one per library area). Rules, documented in docs/python.md:
//
//   * images: HxWx3 uint8 RGB (HxW uint8 grey where a function says so). A C-contiguous
//     array is used in place (zero copy); any other layout is copied once into a
//     contiguous buffer. No silent dtype conversion: a wrong dtype is a ValueError.
//   * masks: HxW bool or uint8 (non-zero = foreground), same copy rule.
//   * results: tensors and Mats are handed to numpy without a copy (the array keeps the
//     C++ buffer alive through a capsule).
//   * nephroseg::Error -> ValueError, c10::Error and other C++ errors -> RuntimeError,
//     with the library's message.
#pragma once

#include <ATen/core/Tensor.h>
#include <opencv2/core/mat.hpp>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "nephroseg/core/precision.h"
#include "nephroseg/core/shard.h"
#include "nephroseg/workloads/workload.h"

namespace nephroseg::python {

namespace py = pybind11;

/// Raises ValueError (a py::value_error) with the concatenated message.
[[noreturn]] void value_error(const std::string& message);

/// An image argument as a cv::Mat viewing (or, when not C-contiguous, owning a copy of)
/// the array's pixels. `channels`: 3 = HxWx3 only; 0 = HxWx3 or HxW (grey, CV_8UC1).
/// `keep` receives the array the Mat points into; keep it alive while the Mat is used.
cv::Mat image_arg(const py::handle& obj, const char* name, py::object& keep, int channels = 3);

/// A mask argument (HxW bool or uint8) as CV_8UC1 0/255 (a new buffer).
cv::Mat mask_arg(const py::handle& obj, const char* name);

/// A float32 array of exactly `ndim` dimensions, C-contiguous (copied once otherwise).
py::array_t<float> float_array_arg(const py::handle& obj, const char* name, int ndim);

/// Points: an (N, 2) array-like of x, y (any real dtype), as float pairs.
std::vector<std::array<float, 2>> points_arg(const py::handle& obj, const char* name);
/// Four finite numbers (x0, y0, x1, y1).
std::array<float, 4> box_arg(const py::handle& obj, const char* name);

/// A tensor as a numpy array sharing its memory (made contiguous first if needed).
/// Supported dtypes: float32, float64, uint8, bool, int32, int64.
py::array tensor_to_numpy(const at::Tensor& tensor);
/// A cv::Mat (CV_8U / CV_32F / CV_32S, 1 or more channels) as a numpy array sharing
/// its memory: HxW for one channel, HxWxC otherwise.
py::array mat_to_numpy(const cv::Mat& mat);

/// A numpy view of a C-contiguous image array as a tensor [H, W, C] (or [H, W]).
at::Tensor image_tensor(const cv::Mat& image);

/// A dict or a JSON file path -> JSON text, for the library's from_json_text().
/// Returns nullopt for None.
std::optional<std::string> json_text_arg(const py::handle& obj, const char* name, std::string* path_out);
/// JSON text -> Python object (json.loads).
/// The `precision=` keyword of the model loaders: "fp32" | "bf16" | "int8" | "auto",
/// resolved for this CPU (bf16 without native bf16, int8 without VNNI / AMX-INT8 raise
/// unless force_precision).
inline Precision precision_arg(const std::string& precision, bool force) {
  return resolve_precision(precision_names().parse(precision, "precision"), force);
}

py::object json_loads(const std::string& text);

/// The `shard=` keyword of the batch functions: "" = the whole batch, "K/N" or "auto".
inline Shard shard_arg(const std::string& shard) { return shard.empty() ? Shard{} : parse_shard(shard, "shard"); }

/// The `precision=` keyword of the batch functions, as a workload records it.
inline workloads::ModelPrecision model_precision_arg(const std::string& precision, bool force) {
  const Precision requested = precision_names().parse(precision, "precision");
  return {resolve_precision(requested, force), requested};
}

/// Registered once by the module: the exception translation above.
void register_exceptions(py::module_& m);

// One registration function per area (python/<area>.cpp).
void bind_io(py::module_& m);
void bind_sam(py::module_& m);
void bind_dinov2(py::module_& m);
void bind_gbmseg(py::module_& m);
void bind_glomsam(py::module_& m);
void bind_measure(py::module_& m);
void bind_eval(py::module_& m);
void bind_slide(py::module_& m);
void bind_workloads(py::module_& m);

}  // namespace nephroseg::python
