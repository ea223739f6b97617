#include "nephroseg/io/tensor_mat.h"

#include <ATen/ATen.h>
#include <opencv2/core.hpp>

#include <cstring>

#include "nephroseg/core/error.h"

namespace nephroseg::io {
namespace {

at::ScalarType scalar_type_of(const cv::Mat& mat) {
  switch (mat.depth()) {
    case CV_8U: return at::kByte;
    case CV_32F: return at::kFloat;
    case CV_32S: return at::kInt;
    default: NEPHRO_CHECK(false, "image depth ", mat.depth(), " has no tensor view (8-bit, int32 or float only)");
  }
  return at::kByte;
}

}  // namespace

at::Tensor mat_view(const cv::Mat& mat, bool squeeze) {
  NEPHRO_CHECK(!mat.empty(), "empty image");
  NEPHRO_CHECK(mat.isContinuous(), "internal: mat_view needs a continuous image");
  const auto type = scalar_type_of(mat);
  void* data = const_cast<uint8_t*>(mat.ptr<uint8_t>());
  if (squeeze && mat.channels() == 1) return at::from_blob(data, {mat.rows, mat.cols}, type);
  return at::from_blob(data, {mat.rows, mat.cols, mat.channels()}, type);
}

at::Tensor mat_to_tensor(const cv::Mat& mat, bool squeeze) {
  NEPHRO_CHECK(!mat.empty(), "empty image");
  if (mat.depth() == CV_16U) {
    cv::Mat wide;
    mat.convertTo(wide, CV_32S);
    return mat_view(wide, squeeze).clone();
  }
  if (!mat.isContinuous()) return mat_view(mat.clone(), squeeze).clone();
  return mat_view(mat, squeeze).clone();
}

cv::Mat tensor_to_mat(const at::Tensor& tensor, bool bool_as_255) {
  NEPHRO_CHECK(tensor.dim() == 2 || tensor.dim() == 3, "expected an [H, W] or [H, W, C] tensor, got ",
               tensor.dim(), " dimensions");
  at::Tensor t = tensor.to(at::kCPU);
  int depth = CV_8U;
  if (t.scalar_type() == at::kBool) {
    t = bool_as_255 ? t.to(at::kByte).mul_(255) : t.to(at::kByte);
  } else if (t.scalar_type() == at::kFloat) {
    depth = CV_32F;
  } else if (t.scalar_type() == at::kInt) {
    depth = CV_32S;
  } else {
    NEPHRO_CHECK(t.scalar_type() == at::kByte, "tensor type ", t.scalar_type(), " has no image form");
  }
  t = t.contiguous();
  const int rows = static_cast<int>(t.size(0)), cols = static_cast<int>(t.size(1));
  const int channels = t.dim() == 3 ? static_cast<int>(t.size(2)) : 1;
  cv::Mat out(rows, cols, CV_MAKETYPE(depth, channels));
  std::memcpy(out.data, t.data_ptr(), static_cast<size_t>(t.numel()) * t.element_size());
  return out;
}

}  // namespace nephroseg::io
