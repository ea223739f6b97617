// nephroseg/measure/thickness_map.h: a picture of where a membrane is thin or thick.
//
// The membrane (mask) is coloured by its local width: every mask pixel takes the width
// of the nearest included direct (medial-axis) measurement of `result` (measure_thickness,
// Estimator::kDirect), through a perceptual colour map (OpenCV's "turbo": blue = thin,
// red = thick) over [low, high] nm. Pixels with no included measurement anywhere stay
// grey. The rest of the image is shown in grey at reduced contrast. A colour bar with nm
// ticks (and the reference range marked when given) is drawn on the right and a scale
// bar (a round length of about a fifth of the width) at the bottom left.
//
//   cv::Mat map = draw_thickness_map(image_rgb, mask, measure_thickness(mask, o), options);
//
// Thread safety: reentrant.
#pragma once

#include <opencv2/core/mat.hpp>

#include <string>

#include "nephroseg/measure/reference.h"
#include "nephroseg/measure/thickness.h"

namespace nephroseg::measure {

struct ThicknessMapOptions {
  /// Colour range in nm; both 0 = automatic: [5th, 95th] percentile of the local widths,
  /// widened to hold the reference range, rounded outwards to a tick step.
  double low_nm = 0, high_nm = 0;
  const ReferenceRange* range = nullptr;  ///< marked on the colour bar when set
  std::string title;                      ///< written above the picture ("" = none)
};

/// The picture (CV_8UC3 RGB): the image (grey or RGB, the mask's size; empty = black)
/// with the coloured membrane, plus the colour bar to its right. Throws nephroseg::Error
/// when the mask and the image differ in size or result.nm_per_pixel <= 0.
cv::Mat draw_thickness_map(const cv::Mat& image, const cv::Mat& mask, const ThicknessResult& result,
                           const ThicknessMapOptions& options = {});

/// Width in nm per mask pixel (CV_32F; NaN outside the mask or without a measurement):
/// the values draw_thickness_map colours.
cv::Mat local_width_nm(const cv::Mat& mask, const ThicknessResult& result);

}  // namespace nephroseg::measure
