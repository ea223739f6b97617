// The classical (weight-free) glomerulus detector.
#include "nephroseg/slide/detector.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

#include "nephroseg/core/error.h"

namespace nephroseg::slide {
namespace {

cv::Mat disc(double radius_px) {
  const int r = std::max(0, static_cast<int>(std::lround(radius_px)));
  return cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(2 * r + 1, 2 * r + 1));
}

// Bilinear sample of `grid` (CV_32F) at global work coordinates, pixel centres
// mapped as (x + 0.5) * scale - 0.5; computed in double from global coordinates so
// that two tiles get exactly the same value for the same pixel.
cv::Mat sample_grid(const cv::Mat& grid, double scale, const cv::Rect& rect) {
  cv::Mat out(rect.size(), CV_32F);
  std::vector<int> xi0(rect.width), xi1(rect.width);
  std::vector<float> xw(rect.width);
  for (int x = 0; x < rect.width; ++x) {
    const double gx = std::clamp((rect.x + x + 0.5) * scale - 0.5, 0.0, grid.cols - 1.0);
    xi0[x] = static_cast<int>(std::floor(gx));
    xi1[x] = std::min(grid.cols - 1, xi0[x] + 1);
    xw[x] = static_cast<float>(gx - xi0[x]);
  }
  for (int y = 0; y < rect.height; ++y) {
    const double gy = std::clamp((rect.y + y + 0.5) * scale - 0.5, 0.0, grid.rows - 1.0);
    const int y0 = static_cast<int>(std::floor(gy)), y1 = std::min(grid.rows - 1, y0 + 1);
    const float wy = static_cast<float>(gy - y0);
    const float* r0 = grid.ptr<float>(y0);
    const float* r1 = grid.ptr<float>(y1);
    float* o = out.ptr<float>(y);
    for (int x = 0; x < rect.width; ++x) {
      const float a = r0[xi0[x]] + (r0[xi1[x]] - r0[xi0[x]]) * xw[x];
      const float b = r1[xi0[x]] + (r1[xi1[x]] - r1[xi0[x]]) * xw[x];
      o[x] = a + (b - a) * wy;
    }
  }
  return out;
}

}  // namespace

std::string ClassicalDetector::config_json() const {
  nlohmann::ordered_json j;
  j["sigma_fine_um"] = options_.sigma_fine_um;
  j["background_radius_um"] = options_.background_radius_um;
  j["sigma_background_um"] = options_.sigma_background_um;
  j["min_contrast"] = options_.min_contrast;
  j["open_radius_um"] = options_.open_radius_um;
  j["close_radius_um"] = options_.close_radius_um;
  j["max_hole_um2"] = options_.max_hole_um2;
  return j.dump();
}

void ClassicalDetector::prepare(const SlideContext& context) {
  NEPHRO_CHECK(!context.thumb_signal.empty() && context.work_mpp > 0, "classical detector: empty slide context");
  context_ = context;
  const double thumb_um = context.work_mpp / context.work_to_thumb;  // µm per thumbnail pixel
  // Background on a coarse grid: a grey opening with a disc wider than any glomerulus
  // (removes the objects, keeps the tissue level: a rolling-ball background), then a
  // Gaussian; sigma_background is 4 coarse pixels.
  // The grid is also held to 1024 px per side (slides wider than ~30,000 px at 0.5 µm/px)
  // so that the background's memory does not grow with the slide.
  const double longest_um = std::max(context.thumb_signal.cols, context.thumb_signal.rows) * thumb_um;
  const double coarse_um = std::max({thumb_um, options_.sigma_background_um / 4.0, longest_um / 1024.0});
  const double thumb_to_coarse = thumb_um / coarse_um;
  const cv::Size coarse(std::max(1, static_cast<int>(std::lround(context.thumb_signal.cols * thumb_to_coarse))),
                        std::max(1, static_cast<int>(std::lround(context.thumb_signal.rows * thumb_to_coarse))));
  // Float copies of the thumbnail are 16 MiB each at 2048 x 2048: the steps below work in
  // place so that at most two are alive (this sets the run's peak memory).
  cv::Mat f;
  context.thumb_signal.convertTo(f, CV_32F);
  cv::Mat small;
  if (coarse == f.size()) {
    small = f.clone();
  } else {
    cv::resize(f, small, coarse, 0, 0, cv::INTER_AREA);
  }
  cv::morphologyEx(small, small, cv::MORPH_OPEN, disc(options_.background_radius_um / coarse_um), cv::Point(-1, -1),
                   /*iterations=*/1, cv::BORDER_REPLICATE);
  const double sigma_coarse = options_.sigma_background_um / coarse_um;
  cv::GaussianBlur(small, small, cv::Size(0, 0), sigma_coarse, sigma_coarse, cv::BORDER_REFLECT);
  background_ = small;
  small.release();
  work_to_coarse_ = context.work_to_thumb * (static_cast<double>(coarse.width) / context.thumb_signal.cols);
  // Threshold from the thumbnail's band-pass inside tissue: b = fine - background, in f.
  const double sigma_fine_thumb = options_.sigma_fine_um / thumb_um;
  if (sigma_fine_thumb >= 0.5)
    cv::GaussianBlur(f, f, cv::Size(0, 0), sigma_fine_thumb, sigma_fine_thumb, cv::BORDER_REFLECT);
  const double to_coarse = static_cast<double>(coarse.width) / f.cols;
  for (int y = 0; y < f.rows; ++y) {
    cv::Mat row = f.row(y);
    row -= sample_grid(background_, to_coarse, cv::Rect(0, y, f.cols, 1));
  }
  const cv::Mat& b = f;
  std::vector<float> vals;
  for (int y = 0; y < b.rows; ++y)
    for (int x = 0; x < b.cols; ++x)
      if (context.tissue.at<uint8_t>(y, x)) vals.push_back(b.at<float>(y, x));
  double t = options_.min_contrast;
  if (vals.size() > 16) {
    // Otsu over 256 bins spanning the band-pass range.
    const auto [mn, mx] = std::minmax_element(vals.begin(), vals.end());
    const double lo = *mn, hi = std::max(*mx, *mn + 1e-3f);
    std::vector<double> hist(256, 0.0);
    for (float v : vals) hist[std::min(255, static_cast<int>((v - lo) / (hi - lo) * 256.0))] += 1;
    const double total = static_cast<double>(vals.size());
    double sum = 0;
    for (int i = 0; i < 256; ++i) sum += i * hist[i];
    double w0 = 0, sum0 = 0, best = -1;
    int best_i = 0;
    for (int i = 0; i < 256; ++i) {
      w0 += hist[i];
      sum0 += i * hist[i];
      if (w0 == 0 || w0 == total) continue;
      const double m0 = sum0 / w0, m1 = (sum - sum0) / (total - w0);
      const double between = w0 * (total - w0) * (m0 - m1) * (m0 - m1);
      if (between > best) {
        best = between;
        best_i = i;
      }
    }
    // Midway between the two Otsu class means: Otsu's own cut sits towards the small
    // (object) class when it is rare, which would move every outline inwards.
    const double cut = lo + (best_i + 1) * (hi - lo) / 256.0;
    double s0 = 0, s1 = 0, n0 = 0, n1 = 0;
    for (float v : vals) {
      if (v < cut) {
        s0 += v;
        ++n0;
      } else {
        s1 += v;
        ++n1;
      }
    }
    if (n0 > 0 && n1 > 0) t = std::max(t, 0.5 * (s0 / n0 + s1 / n1));
  }
  threshold_ = t;
}

TileMask ClassicalDetector::segment(const cv::Mat& rgb, cv::Point origin) const {
  NEPHRO_CHECK(!background_.empty(), "classical detector: prepare() was not called");
  const double mpp = context_.work_mpp;
  cv::Mat grey;
  cv::cvtColor(rgb, grey, cv::COLOR_RGB2GRAY);
  if (context_.brightfield) grey = 255 - grey;
  cv::Mat f;
  grey.convertTo(f, CV_32F);
  cv::Mat fine;
  const double sf = options_.sigma_fine_um / mpp;
  if (sf >= 0.5) cv::GaussianBlur(f, fine, cv::Size(0, 0), sf, sf, cv::BORDER_REFLECT);
  else fine = f;
  cv::Mat b = fine - sample_grid(background_, work_to_coarse_, cv::Rect(origin, rgb.size()));
  TileMask out;
  out.mask = b > threshold_;
  cv::morphologyEx(out.mask, out.mask, cv::MORPH_OPEN, disc(options_.open_radius_um / mpp));
  cv::morphologyEx(out.mask, out.mask, cv::MORPH_CLOSE, disc(options_.close_radius_um / mpp));
  // Fill small holes that lie inside the tile (not touching its edge).
  cv::Mat holes = out.mask == 0;
  cv::Mat labels, stats, centroids;
  const int n = cv::connectedComponentsWithStats(holes, labels, stats, centroids, 4, CV_32S);
  const double max_hole_px = options_.max_hole_um2 / (mpp * mpp);
  std::vector<uint8_t> fill(n, 0);
  for (int i = 1; i < n; ++i) {
    const int x = stats.at<int>(i, cv::CC_STAT_LEFT), y = stats.at<int>(i, cv::CC_STAT_TOP);
    const int w = stats.at<int>(i, cv::CC_STAT_WIDTH), h = stats.at<int>(i, cv::CC_STAT_HEIGHT);
    const bool edge = x == 0 || y == 0 || x + w == rgb.cols || y + h == rgb.rows;
    fill[i] = !edge && stats.at<int>(i, cv::CC_STAT_AREA) <= max_hole_px;
  }
  for (int y = 0; y < labels.rows; ++y) {
    const int* l = labels.ptr<int>(y);
    uint8_t* m = out.mask.ptr<uint8_t>(y);
    for (int x = 0; x < labels.cols; ++x)
      if (fill[l[x]]) m[x] = 255;
  }
  out.score = b / (2.0 * threshold_);
  cv::min(out.score, 1.0, out.score);
  cv::max(out.score, 0.0, out.score);
  return out;
}

}  // namespace nephroseg::slide
