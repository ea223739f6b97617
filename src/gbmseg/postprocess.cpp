// Largest-contour post-processing of a SAM mask (spec §10).
#include <opencv2/imgproc.hpp>

#include "nephroseg/core/error.h"
#include "nephroseg/gbmseg/postprocess.h"

namespace nephroseg::gbmseg {

// Ref: segmenter/segment.py::save_max_contour_area
cv::Mat keep_largest_contour(const cv::Mat& mask) {
  NEPHRO_CHECK(!mask.empty() && mask.type() == CV_8UC1,
               "keep_largest_contour: expected a non-empty single-channel 8-bit mask");
  std::vector<std::vector<cv::Point>> contours;
  std::vector<cv::Vec4i> hierarchy;
  cv::Mat work = mask.clone();  // findContours may modify its input on old OpenCV
  cv::findContours(work, contours, hierarchy, cv::RETR_TREE, cv::CHAIN_APPROX_SIMPLE);
  cv::Mat out = cv::Mat::zeros(mask.size(), CV_8UC1);
  if (contours.empty()) return out;
  size_t best = 0;
  double best_area = cv::contourArea(contours[0]);
  for (size_t i = 1; i < contours.size(); ++i) {
    const double area = cv::contourArea(contours[i]);
    if (area > best_area) {  // Python's max(): the first of equal areas
      best = i;
      best_area = area;
    }
  }
  cv::drawContours(out, contours, static_cast<int>(best), cv::Scalar(255), cv::FILLED);
  return out;
}

}  // namespace nephroseg::gbmseg
