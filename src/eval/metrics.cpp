#include "nephroseg/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <opencv2/imgproc.hpp>

#include "nephroseg/core/error.h"

namespace nephroseg::eval {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

cv::Mat binary(const cv::Mat& m, const char* what) {
  NEPHRO_CHECK(!m.empty() && m.channels() == 1, what, " mask must be a non-empty single-channel image");
  cv::Mat b;
  cv::compare(m, 0, b, cv::CMP_NE);
  return b;
}

void check_sizes(const cv::Mat& a, const cv::Mat& b) {
  NEPHRO_CHECK(a.size() == b.size(), "prediction size ", a.cols, "x", a.rows, " differs from truth size ", b.cols,
               "x", b.rows);
}

// Foreground pixels with a 4-neighbour in the background (outside = background).
cv::Mat inner_boundary(const cv::Mat& b) {
  cv::Mat eroded;
  cv::erode(b, eroded, cv::getStructuringElement(cv::MORPH_CROSS, cv::Size(3, 3)), cv::Point(-1, -1), 1,
            cv::BORDER_CONSTANT, cv::Scalar(0));
  return b & ~eroded;
}

double percentile_sorted(const std::vector<double>& s, double q) {
  if (s.empty()) return kNaN;
  const double pos = q / 100.0 * (s.size() - 1);
  const size_t i = static_cast<size_t>(std::floor(pos));
  const double f = pos - i;
  return i + 1 < s.size() ? s[i] + f * (s[i + 1] - s[i]) : s[i];
}

double directed_p95(const cv::Mat& from_boundary, const cv::Mat& to_boundary) {
  cv::Mat dist;
  cv::distanceTransform(~to_boundary, dist, cv::DIST_L2, cv::DIST_MASK_PRECISE);
  std::vector<double> d;
  for (int y = 0; y < from_boundary.rows; ++y) {
    const uint8_t* f = from_boundary.ptr<uint8_t>(y);
    const float* dr = dist.ptr<float>(y);
    for (int x = 0; x < from_boundary.cols; ++x)
      if (f[x]) d.push_back(dr[x]);
  }
  std::sort(d.begin(), d.end());
  return percentile_sorted(d, 95.0);
}

}  // namespace

double hd95(const cv::Mat& pred_in, const cv::Mat& truth_in) {
  const cv::Mat p = binary(pred_in, "prediction"), t = binary(truth_in, "truth");
  check_sizes(p, t);
  const bool pe = cv::countNonZero(p) == 0, te = cv::countNonZero(t) == 0;
  if (pe && te) return 0.0;
  if (pe || te) return kNaN;
  const cv::Mat pb = inner_boundary(p), tb = inner_boundary(t);
  return std::max(directed_p95(pb, tb), directed_p95(tb, pb));
}

double boundary_iou(const cv::Mat& pred_in, const cv::Mat& truth_in, double ratio) {
  const cv::Mat p = binary(pred_in, "prediction"), t = binary(truth_in, "truth");
  check_sizes(p, t);
  NEPHRO_CHECK(std::isfinite(ratio) && ratio > 0, "boundary IoU dilation ratio must be a positive, finite number (got ",
               ratio, ")");
  const int d = std::max(1, static_cast<int>(std::lround(ratio * std::hypot(p.cols, p.rows))));
  auto band = [&](const cv::Mat& m) {
    cv::Mat eroded;
    cv::erode(m, eroded, cv::Mat::ones(3, 3, CV_8U), cv::Point(-1, -1), d, cv::BORDER_CONSTANT, cv::Scalar(0));
    return m & ~eroded;
  };
  const cv::Mat pb = band(p), tb = band(t);
  const double inter = cv::countNonZero(pb & tb), uni = cv::countNonZero(pb | tb);
  if (uni == 0) return cv::countNonZero(p) == 0 && cv::countNonZero(t) == 0 ? 1.0 : 0.0;
  return inter / uni;
}

MaskMetrics compute_metrics(const cv::Mat& pred_in, const cv::Mat& truth_in, const MetricOptions& o) {
  const cv::Mat p = binary(pred_in, "prediction"), t = binary(truth_in, "truth");
  check_sizes(p, t);
  MaskMetrics m;
  m.tp = cv::countNonZero(p & t);
  m.fp = cv::countNonZero(p & ~t);
  m.fn = cv::countNonZero(~p & t);
  m.tn = static_cast<int64_t>(p.total()) - m.tp - m.fp - m.fn;
  const double tp = m.tp, fp = m.fp, fn = m.fn, tn = m.tn;
  const bool pe = (tp + fp) == 0, te = (tp + fn) == 0;
  if (pe && te) {
    m.dice = m.iou = m.precision = m.recall = 1.0;
  } else {
    m.dice = 2 * tp / (2 * tp + fp + fn);
    m.iou = tp / (tp + fp + fn);
    m.precision = pe ? 0.0 : tp / (tp + fp);
    m.recall = te ? 0.0 : tp / (tp + fn);
  }
  m.accuracy = (tp + tn) / static_cast<double>(p.total());
  m.hd95 = hd95(p, t);
  m.boundary_iou = boundary_iou(p, t, o.boundary_dilation_ratio);
  return m;
}

const std::vector<std::string>& metric_names() {
  static const std::vector<std::string> names = {"dice", "iou", "precision", "recall", "accuracy", "hd95",
                                                 "boundary_iou"};
  return names;
}

double metric_value(const MaskMetrics& m, const std::string& name) {
  if (name == "dice") return m.dice;
  if (name == "iou") return m.iou;
  if (name == "precision") return m.precision;
  if (name == "recall") return m.recall;
  if (name == "accuracy") return m.accuracy;
  if (name == "hd95") return m.hd95;
  if (name == "boundary_iou") return m.boundary_iou;
  NEPHRO_FAIL("unknown metric '", name, "'");
}

bool higher_is_better(const std::string& name) { return name != "hd95"; }

SummaryStats summarize(const std::vector<double>& values) {
  SummaryStats s;
  std::vector<double> v;
  for (double x : values) {
    if (std::isnan(x)) ++s.n_nan;
    else v.push_back(x);
  }
  s.n = static_cast<int>(v.size());
  if (v.empty()) {
    s.mean = s.sd = s.median = s.q25 = s.q75 = s.iqr = s.min = s.max = kNaN;
    return s;
  }
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / v.size();
  double var = 0;
  for (double x : v) var += (x - s.mean) * (x - s.mean);
  s.sd = v.size() > 1 ? std::sqrt(var / (v.size() - 1)) : 0.0;
  s.median = percentile_sorted(v, 50);
  s.q25 = percentile_sorted(v, 25);
  s.q75 = percentile_sorted(v, 75);
  s.iqr = s.q75 - s.q25;
  s.min = v.front();
  s.max = v.back();
  return s;
}

}  // namespace nephroseg::eval
