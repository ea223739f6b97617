// nephroseg/gbmseg/postprocess.h: optional mask post-processing of the GBMSeg segmenter.
#pragma once

#include <opencv2/core/mat.hpp>

namespace nephroseg::gbmseg {

/// Keeps only the largest contour of a binary mask, drawn filled (holes inside it are
/// filled, every other blob is removed), as the authors' save_max_contour_area does:
/// cv::findContours(RETR_TREE, CHAIN_APPROX_SIMPLE) on the non-zero pixels, the contour
/// with the largest cv::contourArea (first one on equal areas), cv::drawContours
/// filled with 255.
///   mask: H x W CV_8UC1 (any non-zero value is foreground); not modified.
///   returns: H x W CV_8UC1 with values {0, 255}; all zero when the mask is empty
///   (the authors' code would crash there).
// Ref: segmenter/segment.py::save_max_contour_area
cv::Mat keep_largest_contour(const cv::Mat& mask);

}  // namespace nephroseg::gbmseg
