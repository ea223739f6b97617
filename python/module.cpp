// python/module.cpp: the nephroseg._nephroseg extension module: shared conversions
// (common.h), exception translation, threads, and the registration of every area.
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <opencv2/core.hpp>

#include <cmath>

#include "common.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/threads.h"
#include "nephroseg/io/tensor_mat.h"

#ifndef NEPHROSEG_VERSION
#define NEPHROSEG_VERSION "unknown"
#endif

namespace nephroseg::python {

void value_error(const std::string& message) { throw py::value_error(message); }

namespace {

std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

std::string shape_text(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(a.shape(i));
  }
  return s + (a.ndim() == 1 ? ",)" : ")");
}

py::array require_array(const py::handle& obj, const char* name, const char* expected) {
  if (!py::isinstance<py::array>(obj))
    value_error(std::string(name) + " must be a numpy array (" + expected + "), got " +
                py::str(py::type::of(obj)).cast<std::string>());
  return py::reinterpret_borrow<py::array>(obj);
}

bool is_u8(const py::array& a) { return a.dtype().kind() == 'u' && a.itemsize() == 1; }
bool is_bool(const py::array& a) { return a.dtype().kind() == 'b'; }

// A C-contiguous version of `a`: `a` itself when it already is, else one copy.
py::array contiguous(const py::array& a) {
  if (a.flags() & py::array::c_style) return a;
  return py::array::ensure(a, py::array::c_style);
}

}  // namespace

cv::Mat image_arg(const py::handle& obj, const char* name, py::object& keep, int channels) {
  const char* expected = channels == 3 ? "HxWx3 uint8 RGB" : "HxWx3 uint8 RGB or HxW uint8 grey";
  py::array a = require_array(obj, name, expected);
  if (!is_u8(a))
    value_error(std::string(name) + " must have dtype uint8 (" + expected + "), got " + dtype_name(a));
  const bool rgb = a.ndim() == 3 && a.shape(2) == 3;
  const bool grey = channels == 0 && a.ndim() == 2;
  if (!rgb && !grey)
    value_error(std::string(name) + " must be " + expected + ", got shape " + shape_text(a));
  if (a.shape(0) == 0 || a.shape(1) == 0)
    value_error(std::string(name) + " is empty (shape " + shape_text(a) + ")");
  a = contiguous(a);
  keep = a;
  return cv::Mat(static_cast<int>(a.shape(0)), static_cast<int>(a.shape(1)), rgb ? CV_8UC3 : CV_8UC1,
                 const_cast<void*>(a.data()));
}

cv::Mat mask_arg(const py::handle& obj, const char* name) {
  py::array a = require_array(obj, name, "HxW bool or uint8");
  if (!is_u8(a) && !is_bool(a))
    value_error(std::string(name) + " must have dtype bool or uint8 (HxW mask), got " + dtype_name(a));
  if (a.ndim() != 2) value_error(std::string(name) + " must be a 2-D HxW mask, got shape " + shape_text(a));
  if (a.shape(0) == 0 || a.shape(1) == 0)
    value_error(std::string(name) + " is empty (shape " + shape_text(a) + ")");
  a = contiguous(a);
  cv::Mat view(static_cast<int>(a.shape(0)), static_cast<int>(a.shape(1)), CV_8UC1, const_cast<void*>(a.data()));
  cv::Mat out;
  cv::compare(view, 0, out, cv::CMP_NE);  // 0/255, a new buffer
  return out;
}

py::array_t<float> float_array_arg(const py::handle& obj, const char* name, int ndim) {
  py::array a = require_array(obj, name, "float32");
  if (a.dtype().kind() != 'f' || a.itemsize() != 4)
    value_error(std::string(name) + " must have dtype float32, got " + dtype_name(a));
  if (a.ndim() != ndim)
    value_error(std::string(name) + " must have " + std::to_string(ndim) + " dimensions, got shape " +
                shape_text(a));
  return py::array_t<float>(contiguous(a));
}

std::vector<std::array<float, 2>> points_arg(const py::handle& obj, const char* name) {
  py::array_t<double, py::array::c_style | py::array::forcecast> a;
  try {
    a = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(obj);
  } catch (const py::error_already_set&) {
  }
  if (!a) value_error(std::string(name) + " must be an (N, 2) array of x, y pixel coordinates");
  if (a.size() == 0) return {};
  if (a.ndim() != 2 || a.shape(1) != 2)
    value_error(std::string(name) + " must be an (N, 2) array of x, y pixel coordinates, got shape " +
                shape_text(a));
  std::vector<std::array<float, 2>> out;
  for (py::ssize_t i = 0; i < a.shape(0); ++i) {
    const double x = a.at(i, 0), y = a.at(i, 1);
    if (!std::isfinite(x) || !std::isfinite(y))
      value_error(std::string(name) + "[" + std::to_string(i) + "] is not finite");
    out.push_back({static_cast<float>(x), static_cast<float>(y)});
  }
  return out;
}

std::array<float, 4> box_arg(const py::handle& obj, const char* name) {
  py::array_t<double, py::array::c_style | py::array::forcecast> a;
  try {
    a = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(obj);
  } catch (const py::error_already_set&) {
  }
  if (!a || a.size() != 4) value_error(std::string(name) + " must be 4 numbers x0, y0, x1, y1");
  std::array<float, 4> b{};
  for (int i = 0; i < 4; ++i) {
    const double v = a.data()[i];
    if (!std::isfinite(v)) value_error(std::string(name) + " has a value that is not finite");
    b[i] = static_cast<float>(v);
  }
  return b;
}

py::array tensor_to_numpy(const at::Tensor& tensor) {
  if (!tensor.defined()) return py::array();
  at::Tensor t = tensor.device().is_cpu() ? tensor.contiguous() : tensor.cpu().contiguous();
  py::dtype dtype;
  switch (t.scalar_type()) {
    case at::kFloat: dtype = py::dtype::of<float>(); break;
    case at::kDouble: dtype = py::dtype::of<double>(); break;
    case at::kByte: dtype = py::dtype::of<uint8_t>(); break;
    case at::kBool: dtype = py::dtype::of<bool>(); break;
    case at::kInt: dtype = py::dtype::of<int32_t>(); break;
    case at::kLong: dtype = py::dtype::of<int64_t>(); break;
    default: throw std::runtime_error(std::string("internal: no numpy dtype for tensor type ") +
                                      std::string(c10::toString(t.scalar_type())));
  }
  std::vector<py::ssize_t> shape(t.sizes().begin(), t.sizes().end()), strides;
  for (int64_t s : t.strides()) strides.push_back(static_cast<py::ssize_t>(s * t.element_size()));
  auto* owner = new at::Tensor(t);
  py::capsule capsule(owner, [](void* p) { delete static_cast<at::Tensor*>(p); });
  return py::array(dtype, shape, strides, t.data_ptr(), capsule);
}

py::array mat_to_numpy(const cv::Mat& mat) {
  if (mat.empty()) return py::array_t<uint8_t>(std::vector<py::ssize_t>{0, 0});
  cv::Mat m = mat.isContinuous() ? mat : mat.clone();
  py::dtype dtype;
  switch (m.depth()) {
    case CV_8U: dtype = py::dtype::of<uint8_t>(); break;
    case CV_16U: dtype = py::dtype::of<uint16_t>(); break;
    case CV_32S: dtype = py::dtype::of<int32_t>(); break;
    case CV_32F: dtype = py::dtype::of<float>(); break;
    case CV_64F: dtype = py::dtype::of<double>(); break;
    default: throw std::runtime_error("internal: no numpy dtype for this image depth");
  }
  std::vector<py::ssize_t> shape{m.rows, m.cols};
  if (m.channels() > 1) shape.push_back(m.channels());
  auto* owner = new cv::Mat(m);
  py::capsule capsule(owner, [](void* p) { delete static_cast<cv::Mat*>(p); });
  return py::array(dtype, shape, owner->data, capsule);
}

at::Tensor image_tensor(const cv::Mat& image) { return io::mat_view(image, /*squeeze=*/image.channels() == 1); }

std::optional<std::string> json_text_arg(const py::handle& obj, const char* name, std::string* path_out) {
  if (obj.is_none()) return std::nullopt;
  if (py::isinstance<py::str>(obj)) {
    if (path_out) *path_out = obj.cast<std::string>();
    return std::nullopt;
  }
  if (!py::isinstance<py::dict>(obj))
    value_error(std::string(name) + " must be a dict or the path of a JSON file");
  return py::module_::import("json").attr("dumps")(obj).cast<std::string>();
}

py::object json_loads(const std::string& text) { return py::module_::import("json").attr("loads")(text); }

void register_exceptions(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const nephroseg::Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const c10::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    }
  });
}

}  // namespace nephroseg::python

PYBIND11_MODULE(_nephroseg, m) {
  namespace py = pybind11;
  using namespace nephroseg::python;
  m.doc() = "nephroseg: GBMSeg and GlomSAM kidney-biopsy segmentation (C++ library bindings).";
  m.attr("__version__") = NEPHROSEG_VERSION;
  register_exceptions(m);

  m.def("set_num_threads", &nephroseg::configure_threads, py::arg("n"),
        "Sets the intra-op thread count of the C++ library (LibTorch and OpenMP); n <= 0\n"
        "means every core. Returns the count now in force. Like torch.set_num_threads.");
  m.def("get_num_threads", [] { return at::get_num_threads(); },
        "The intra-op thread count of the C++ library.");
  m.def("active_blas_library", &nephroseg::active_blas_library,
        "Path of the BLAS library in this process ('' when unknown).");
  m.def("openblas_kernel", &nephroseg::openblas_kernel,
        "The kernel set OpenBLAS chose for this CPU ('SkylakeX', 'Haswell', 'Prescott', ...),\n"
        "or '' when OpenBLAS is not the BLAS in this process.");
  m.def("better_openblas_kernel", &nephroseg::better_openblas_kernel,
        "The OPENBLAS_CORETYPE value that would replace generic kernels OpenBLAS fell back to on\n"
        "a CPU model it does not know ('' when its choice stands). OpenBLAS reads it only when\n"
        "it is loaded: set it before starting Python.");

  bind_io(m);
  bind_sam(m);
  bind_dinov2(m);
  bind_gbmseg(m);
  bind_glomsam(m);
  bind_measure(m);
  bind_eval(m);
  bind_slide(m);
  bind_workloads(m);
}
