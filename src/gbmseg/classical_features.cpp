#include "nephroseg/gbmseg/classical_features.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "nephroseg/core/error.h"

namespace nephroseg::gbmseg {

namespace {

cv::Mat to_grey(const cv::Mat& image) {
  NEPHRO_CHECK(!image.empty(), "classical features: empty image");
  NEPHRO_CHECK(image.depth() == CV_8U && (image.channels() == 1 || image.channels() == 3),
               "classical features: expected a CV_8UC3 RGB or CV_8UC1 image, got type ", image.type());
  if (image.channels() == 1) return image;
  cv::Mat grey;
  cv::cvtColor(image, grey, cv::COLOR_RGB2GRAY);
  return grey;
}

cv::Mat gaussian(const cv::Mat& src, double sigma) {
  cv::Mat out;
  cv::GaussianBlur(src, out, cv::Size(0, 0), sigma, sigma, cv::BORDER_REFLECT);
  return out;
}

// Central first and second differences of a smoothed map.
void derivatives(const cv::Mat& s, cv::Mat& dx, cv::Mat& dy, cv::Mat& dxx, cv::Mat& dyy, cv::Mat& dxy) {
  const cv::Mat d1 = (cv::Mat_<float>(1, 3) << -0.5f, 0.0f, 0.5f);
  const cv::Mat d2 = (cv::Mat_<float>(1, 3) << 1.0f, -2.0f, 1.0f);
  const cv::Mat id = (cv::Mat_<float>(1, 1) << 1.0f);
  cv::sepFilter2D(s, dx, CV_32F, d1, id, cv::Point(-1, -1), 0, cv::BORDER_REFLECT);
  cv::sepFilter2D(s, dy, CV_32F, id, d1, cv::Point(-1, -1), 0, cv::BORDER_REFLECT);
  cv::sepFilter2D(s, dxx, CV_32F, d2, id, cv::Point(-1, -1), 0, cv::BORDER_REFLECT);
  cv::sepFilter2D(s, dyy, CV_32F, id, d2, cv::Point(-1, -1), 0, cv::BORDER_REFLECT);
  cv::sepFilter2D(s, dxy, CV_32F, d1, d1, cv::Point(-1, -1), 0, cv::BORDER_REFLECT);
}

}  // namespace

int ClassicalFeatureOptions::dims() const {
  return static_cast<int>(intensity_scales.size() + gradient_scales.size() + 2 * ridge_scales.size() +
                          texture_scales.size()) +
         (patch_std ? 1 : 0);
}

cv::Mat robust_normalise(const cv::Mat& grey) {
  NEPHRO_CHECK(grey.type() == CV_8UC1, "robust_normalise: expected CV_8UC1, got type ", grey.type());
  // Median and MAD from the 256-bin histogram (exact for 8-bit data).
  int hist[256] = {0};
  for (int y = 0; y < grey.rows; ++y) {
    const uint8_t* row = grey.ptr<uint8_t>(y);
    for (int x = 0; x < grey.cols; ++x) ++hist[row[x]];
  }
  const int64_t n = static_cast<int64_t>(grey.total());
  auto quantile_bin = [&](const int* h, int64_t count, double q) {
    const int64_t target = static_cast<int64_t>(std::floor(q * static_cast<double>(count - 1)));
    int64_t acc = 0;
    for (int v = 0; v < 256; ++v) {
      acc += h[v];
      if (acc > target) return v;
    }
    return 255;
  };
  const int median = quantile_bin(hist, n, 0.5);
  int dev[256] = {0};
  for (int v = 0; v < 256; ++v) dev[std::abs(v - median)] += hist[v];
  double mad = quantile_bin(dev, n, 0.5);
  if (mad < 1.0) {
    // Very flat images: fall back to the standard deviation.
    cv::Scalar mean, sd;
    cv::meanStdDev(grey, mean, sd);
    mad = std::max(sd[0] / 1.4826, 0.5);
  }
  cv::Mat z;
  grey.convertTo(z, CV_32F, 1.0 / (1.4826 * mad), -median / (1.4826 * mad));
  cv::min(z, 6.0, z);
  cv::max(z, -6.0, z);
  return z;
}

at::Tensor classical_patch_features(const cv::Mat& image, const ClassicalFeatureOptions& o) {
  const int p = o.patch_size;
  NEPHRO_CHECK(p >= 1, "classical features: patch_size must be >= 1, got ", p);
  NEPHRO_CHECK(image.rows % p == 0 && image.cols % p == 0, "classical features: image ", image.cols, "x",
               image.rows, " is not a multiple of the patch size ", p);
  const cv::Mat z = robust_normalise(to_grey(image));
  const int gh = image.rows / p, gw = image.cols / p;

  std::vector<cv::Mat> maps;  // per-pixel maps (CV_32F); patch means taken below
  std::vector<double> weights;
  for (double s : o.intensity_scales) {
    maps.push_back(gaussian(z, s));
    weights.push_back(o.intensity_weight);
  }
  for (double s : o.gradient_scales) {
    cv::Mat dx, dy, dxx, dyy, dxy;
    derivatives(gaussian(z, s), dx, dy, dxx, dyy, dxy);
    cv::Mat mag;
    cv::magnitude(dx, dy, mag);
    maps.push_back(mag * s);
    weights.push_back(o.gradient_weight);
  }
  for (double s : o.ridge_scales) {
    cv::Mat dx, dy, dxx, dyy, dxy;
    derivatives(gaussian(z, s), dx, dy, dxx, dyy, dxy);
    cv::Mat half_trace = (dxx + dyy) * 0.5;
    cv::Mat diff = (dxx - dyy) * 0.5;
    cv::Mat root;
    cv::sqrt(diff.mul(diff) + dxy.mul(dxy), root);
    const double norm = s * s;
    maps.push_back((half_trace - root) * norm);  // l1 (most negative: bright ridge)
    maps.push_back((half_trace + root) * norm);  // l2 (most positive: dark valley)
    weights.push_back(o.ridge_weight);
    weights.push_back(o.ridge_weight);
  }
  for (double s : o.texture_scales) {
    const cv::Mat m = gaussian(z, s);
    const cv::Mat m2 = gaussian(z.mul(z), s);
    cv::Mat var = m2 - m.mul(m);
    cv::max(var, 0.0, var);
    cv::Mat sd;
    cv::sqrt(var, sd);
    maps.push_back(sd);
    weights.push_back(o.texture_weight);
  }

  const int d = static_cast<int>(maps.size()) + (o.patch_std ? 1 : 0);
  at::Tensor out = at::empty({static_cast<int64_t>(gh) * gw, d}, at::kFloat);  // [N, D]
  float* dst = out.data_ptr<float>();
  for (int c = 0; c < static_cast<int>(maps.size()); ++c) {
    cv::Mat means;
    cv::resize(maps[c], means, cv::Size(gw, gh), 0, 0, cv::INTER_AREA);  // exact block means
    for (int r = 0; r < gh; ++r)
      for (int q = 0; q < gw; ++q)
        dst[(static_cast<int64_t>(r) * gw + q) * d + c] = static_cast<float>(means.at<float>(r, q) * weights[c]);
  }
  if (o.patch_std) {
    cv::Mat mean, mean2;
    cv::resize(z, mean, cv::Size(gw, gh), 0, 0, cv::INTER_AREA);
    cv::resize(z.mul(z), mean2, cv::Size(gw, gh), 0, 0, cv::INTER_AREA);
    for (int r = 0; r < gh; ++r)
      for (int q = 0; q < gw; ++q) {
        const double m = mean.at<float>(r, q);
        const double v = std::max(0.0, static_cast<double>(mean2.at<float>(r, q)) - m * m);
        dst[(static_cast<int64_t>(r) * gw + q) * d + d - 1] = static_cast<float>(std::sqrt(v) * o.texture_weight);
      }
  }
  return out;
}

ClassicalFeatureExtractor::ClassicalFeatureExtractor(ClassicalFeatureOptions options)
    : options_(std::move(options)) {
  NEPHRO_CHECK(options_.patch_size >= 1, "ClassicalFeatureExtractor: patch_size must be >= 1");
  NEPHRO_CHECK(options_.dims() >= 1, "ClassicalFeatureExtractor: no feature family selected");
}

std::string ClassicalFeatureExtractor::name() const {
  return "classical (weight-free, " + std::to_string(options_.dims()) + "-d multi-scale filter responses)";
}

at::Tensor ClassicalFeatureExtractor::extract(const cv::Mat& rgb) const {
  return classical_patch_features(rgb, options_);
}

}  // namespace nephroseg::gbmseg
