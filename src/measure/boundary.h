// src/measure/boundary.h (internal): sub-pixel membrane boundary as the 0.5 iso-line
// of a smoothed mask, with ray and nearest-distance queries.
#pragma once

#include <opencv2/core/mat.hpp>
#include <opencv2/core/types.hpp>

#include <vector>

namespace nephroseg::measure::detail {

struct BoundaryCurve {
  std::vector<cv::Point2d> points;  // pixel-centre coordinates
  bool closed = false;
};

class Boundary {
 public:
  /// field: CV_32F values in [0, 1]; the boundary is field == level.
  Boundary(const cv::Mat& field, double level = 0.5, double cell_px = 4.0);

  const std::vector<BoundaryCurve>& curves() const { return curves_; }
  const cv::Mat& field() const { return field_; }
  /// Bilinear sample of the field (clamped at the image edge).
  double sample(cv::Point2d p) const;
  /// Distance along the unit direction d from o to the first boundary crossing with
  /// distance in (t_min, t_max]; < 0 when none (e.g. the ray leaves the image).
  double cast(cv::Point2d o, cv::Point2d d, double t_min, double t_max) const;
  /// Distance from p to the nearest boundary segment (searching up to max_r).
  double nearest(cv::Point2d p, double max_r) const;

 private:
  struct Seg {
    cv::Point2d a, b;
  };
  cv::Mat field_;
  double cell_;
  int gw_ = 0, gh_ = 0;
  std::vector<Seg> segs_;
  std::vector<std::vector<int>> grid_;
  std::vector<BoundaryCurve> curves_;
};

}  // namespace nephroseg::measure::detail
