// nephroseg/io/tensor_mat.h: the one conversion between cv::Mat images and tensors.
//
//   at::Tensor hwc = io::mat_view(rgb);      // [H, W, 3] uint8, shares rgb's memory
//   at::Tensor own = io::mat_to_tensor(rgb); // [H, W, 3] uint8, owns a copy
//   cv::Mat mask   = io::tensor_to_mat(m);   // [H, W] bool/uint8/float -> CV_8U/CV_32F copy
//
// Layout: a Mat of C channels is [H, W, C] (pass squeeze for [H, W] from a 1-channel
// Mat). Depths: CV_8U -> uint8, CV_32S -> int32, CV_32F -> float32; mat_to_tensor also
// takes CV_16U and widens it to int32 (LibTorch 1.13 has no uint16). Channel order is
// whatever the Mat holds (RGB in this library).
#pragma once

#include <ATen/core/Tensor.h>
#include <opencv2/core/mat.hpp>

namespace nephroseg::io {

/// A tensor viewing the Mat's pixels (no copy). The Mat must be continuous and
/// outlive the tensor. squeeze: a 1-channel Mat gives [H, W] instead of [H, W, 1].
at::Tensor mat_view(const cv::Mat& mat, bool squeeze = false);

/// An owning copy of the Mat's pixels (any Mat, continuous or not).
at::Tensor mat_to_tensor(const cv::Mat& mat, bool squeeze = false);

/// A Mat copy of a CPU tensor [H, W] or [H, W, C]: bool and uint8 -> CV_8U (bool as
/// 0/255 when bool_as_255, else 0/1), float32 -> CV_32F, int32 -> CV_32S.
cv::Mat tensor_to_mat(const at::Tensor& tensor, bool bool_as_255 = true);

}  // namespace nephroseg::io
