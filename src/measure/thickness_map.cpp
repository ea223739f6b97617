// Thickness map picture (see nephroseg/measure/thickness_map.h).
#include "nephroseg/measure/thickness_map.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

#include "nephroseg/core/error.h"

namespace nephroseg::measure {

namespace {

// A "nice" step (1, 2 or 5 x 10^k) near span / 5.
double tick_step(double span) {
  const double raw = std::max(span, 1e-9) / 5.0;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= raw) return m * p;
  return 10 * p;
}

std::string length_label(double nm) {
  char buf[32];
  if (nm >= 1000) {
    std::snprintf(buf, sizeof buf, "%g um", nm / 1000.0);
  } else {
    std::snprintf(buf, sizeof buf, "%g nm", nm);
  }
  return buf;
}

// RGB colour of t in [0, 1] on OpenCV's turbo map.
cv::Vec3b turbo(double t) {
  static const cv::Mat lut = [] {
    cv::Mat ramp(1, 256, CV_8UC1);
    for (int i = 0; i < 256; ++i) ramp.at<uint8_t>(0, i) = static_cast<uint8_t>(i);
    cv::Mat bgr, rgb;
    cv::applyColorMap(ramp, bgr, cv::COLORMAP_TURBO);
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    return rgb;
  }();
  const int i = std::clamp(static_cast<int>(std::lround(t * 255.0)), 0, 255);
  return lut.at<cv::Vec3b>(0, i);
}

void text(cv::Mat& img, const std::string& s, cv::Point at, double scale, const cv::Scalar& colour) {
  cv::putText(img, s, at, cv::FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv::LINE_AA);
}

}  // namespace

cv::Mat local_width_nm(const cv::Mat& mask, const ThicknessResult& r) {
  NEPHRO_CHECK(!mask.empty() && mask.type() == CV_8UC1, "thickness map: the mask must be CV_8UC1");
  NEPHRO_CHECK(r.nm_per_pixel > 0, "thickness map: the result has no pixel size");
  cv::Mat out(mask.size(), CV_32F, cv::Scalar(std::numeric_limits<float>::quiet_NaN()));
  // Seeds: the pixel of every included direct measurement (its ridge point).
  cv::Mat seeds(mask.size(), CV_8UC1, cv::Scalar(255));
  std::vector<double> width_at;  // by seed order (raster order, as distanceTransform labels them)
  cv::Mat seed_width(mask.size(), CV_64F, cv::Scalar(0));
  bool any = false;
  for (const ThicknessMeasurement& m : r.measurements) {
    if (m.estimator != Estimator::kDirect || m.excluded) continue;
    const int x = std::clamp(static_cast<int>(std::lround(m.position.x)), 0, mask.cols - 1);
    const int y = std::clamp(static_cast<int>(std::lround(m.position.y)), 0, mask.rows - 1);
    seeds.at<uint8_t>(y, x) = 0;
    seed_width.at<double>(y, x) = m.width_px * r.nm_per_pixel;  // the last one at a pixel wins
    any = true;
  }
  if (!any) return out;
  cv::Mat dist, labels;
  cv::distanceTransform(seeds, dist, labels, cv::DIST_L2, cv::DIST_MASK_5, cv::DIST_LABEL_PIXEL);
  // Label l (1-based) is the l-th zero pixel in raster order.
  for (int y = 0; y < mask.rows; ++y)
    for (int x = 0; x < mask.cols; ++x)
      if (seeds.at<uint8_t>(y, x) == 0) width_at.push_back(seed_width.at<double>(y, x));
  for (int y = 0; y < mask.rows; ++y) {
    const uint8_t* mrow = mask.ptr<uint8_t>(y);
    const int* lrow = labels.ptr<int>(y);
    float* orow = out.ptr<float>(y);
    for (int x = 0; x < mask.cols; ++x) {
      const int l = lrow[x];
      if (mrow[x] && l >= 1 && static_cast<size_t>(l) <= width_at.size())
        orow[x] = static_cast<float>(width_at[static_cast<size_t>(l - 1)]);
    }
  }
  return out;
}

cv::Mat draw_thickness_map(const cv::Mat& image, const cv::Mat& mask, const ThicknessResult& r,
                           const ThicknessMapOptions& o) {
  NEPHRO_CHECK(image.empty() || image.size() == mask.size(), "thickness map: the image is ", image.cols, "x",
               image.rows, " but the mask ", mask.cols, "x", mask.rows);
  const cv::Mat width = local_width_nm(mask, r);

  // Colour range.
  double lo = o.low_nm, hi = o.high_nm;
  if (!(hi > lo)) {
    std::vector<float> v;
    for (int y = 0; y < width.rows; ++y)
      for (int x = 0; x < width.cols; ++x)
        if (std::isfinite(width.at<float>(y, x))) v.push_back(width.at<float>(y, x));
    if (v.empty()) {
      lo = 0, hi = 1;
    } else {
      std::sort(v.begin(), v.end());
      lo = v[static_cast<size_t>(0.05 * (v.size() - 1))];
      hi = v[static_cast<size_t>(0.95 * (v.size() - 1))];
    }
    if (o.range && std::isfinite(o.range->low_nm)) lo = std::min(lo, o.range->low_nm);
    if (o.range && std::isfinite(o.range->high_nm)) hi = std::max(hi, o.range->high_nm);
    if (!(hi > lo)) hi = lo + 1;
    const double step = tick_step(hi - lo);
    lo = std::max(0.0, std::floor(lo / step) * step);
    hi = std::ceil(hi / step) * step;
  }

  // The image in muted grey, the membrane in colour.
  const int W = mask.cols, H = mask.rows;
  cv::Mat grey;
  if (image.empty()) {
    grey = cv::Mat::zeros(H, W, CV_8UC1);
  } else if (image.channels() == 3) {
    cv::cvtColor(image, grey, cv::COLOR_RGB2GRAY);
  } else {
    grey = image.clone();
  }
  cv::Mat canvas_img;
  grey.convertTo(grey, CV_8U, 0.6, 40);
  cv::cvtColor(grey, canvas_img, cv::COLOR_GRAY2RGB);
  for (int y = 0; y < H; ++y) {
    const uint8_t* mrow = mask.ptr<uint8_t>(y);
    const float* wrow = width.ptr<float>(y);
    cv::Vec3b* crow = canvas_img.ptr<cv::Vec3b>(y);
    for (int x = 0; x < W; ++x) {
      if (!mrow[x]) continue;
      crow[x] = std::isfinite(wrow[x]) ? turbo((wrow[x] - lo) / (hi - lo)) : cv::Vec3b(150, 150, 150);
    }
  }

  // Scale bar: a round length near W / 5, bottom left, white on a dark box.
  const double font = std::max(0.4, std::min(W, H) / 900.0);
  const int pad = std::max(6, W / 80);
  {
    const double target_nm = W / 5.0 * r.nm_per_pixel;
    const double p = std::pow(10.0, std::floor(std::log10(target_nm)));
    double nm = p;
    for (double m : {1.0, 2.0, 5.0})
      if (m * p <= target_nm) nm = m * p;
    const int len = std::max(1, static_cast<int>(std::lround(nm / r.nm_per_pixel)));
    const int bar_h = std::max(3, H / 150);
    const int y = H - pad - bar_h;
    cv::rectangle(canvas_img, cv::Point(pad - 4, y - static_cast<int>(26 * font) - 6),
                  cv::Point(pad + len + 4, H - pad + 4), cv::Scalar(0, 0, 0), cv::FILLED);
    cv::rectangle(canvas_img, cv::Point(pad, y), cv::Point(pad + len, y + bar_h), cv::Scalar(255, 255, 255),
                  cv::FILLED);
    text(canvas_img, length_label(nm), cv::Point(pad, y - 6), font, cv::Scalar(255, 255, 255));
  }

  // Colour bar on the right, with ticks in nm.
  const int bar_w = std::max(16, W / 30), label_w = static_cast<int>(110 * font) + 20;
  const int top = o.title.empty() ? 0 : static_cast<int>(34 * font) + 8;
  cv::Mat canvas(H + top, W + bar_w + label_w + 2 * pad, CV_8UC3, cv::Scalar(255, 255, 255));
  canvas_img.copyTo(canvas(cv::Rect(0, top, W, H)));
  if (!o.title.empty()) text(canvas, o.title, cv::Point(pad, static_cast<int>(26 * font) + 4), font, cv::Scalar(0, 0, 0));
  const int bx = W + pad, by0 = top + pad + static_cast<int>(36 * font), by1 = top + H - pad;
  auto ypix = [&](double v) { return by1 - static_cast<int>(std::lround((v - lo) / (hi - lo) * (by1 - by0))); };
  for (int y = by0; y <= by1; ++y) {
    const cv::Vec3b c = turbo(static_cast<double>(by1 - y) / std::max(1, by1 - by0));
    cv::line(canvas, cv::Point(bx, y), cv::Point(bx + bar_w, y), cv::Scalar(c[0], c[1], c[2]));
  }
  cv::rectangle(canvas, cv::Point(bx, by0), cv::Point(bx + bar_w, by1), cv::Scalar(0, 0, 0), 1);
  text(canvas, "nm", cv::Point(bx, by0 - static_cast<int>(16 * font)), font, cv::Scalar(0, 0, 0));
  const double step = tick_step(hi - lo);
  for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9; v += step) {
    const int y = ypix(v);
    cv::line(canvas, cv::Point(bx + bar_w, y), cv::Point(bx + bar_w + 5, y), cv::Scalar(0, 0, 0), 1);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    text(canvas, buf, cv::Point(bx + bar_w + 8, y + static_cast<int>(5 * font)), font * 0.9, cv::Scalar(0, 0, 0));
  }
  if (o.range) {
    // The reference range: a bracket left of the bar.
    const double rl = std::isfinite(o.range->low_nm) ? o.range->low_nm : lo;
    const double rh = std::isfinite(o.range->high_nm) ? o.range->high_nm : hi;
    if (rh >= lo && rl <= hi) {
      const int y0 = ypix(std::min(rh, hi)), y1 = ypix(std::max(rl, lo));
      cv::line(canvas, cv::Point(bx - 4, y0), cv::Point(bx - 4, y1), cv::Scalar(0, 0, 0), 2);
      cv::line(canvas, cv::Point(bx - 4, y0), cv::Point(bx - 1, y0), cv::Scalar(0, 0, 0), 2);
      cv::line(canvas, cv::Point(bx - 4, y1), cv::Point(bx - 1, y1), cv::Scalar(0, 0, 0), 2);
    }
  }
  return canvas;
}

}  // namespace nephroseg::measure
