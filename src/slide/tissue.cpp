// Thumbnail, channel mapping, tissue mask and tile plan.
#include "nephroseg/slide/tissue.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

#include "nephroseg/core/error.h"

namespace nephroseg::slide {
namespace {

double percentile(const cv::Mat& plane, double p) {
  cv::Mat d;
  plane.convertTo(d, CV_64F);
  std::vector<double> v(d.begin<double>(), d.end<double>());
  std::sort(v.begin(), v.end());
  const double pos = p / 100.0 * (v.size() - 1);
  const size_t i = static_cast<size_t>(std::floor(pos));
  const size_t j = std::min(v.size() - 1, i + 1);
  return v[i] + (v[j] - v[i]) * (pos - i);
}

}  // namespace

Thumbnail read_thumbnail(SlideReader& reader, int max_side) {
  const SlideInfo& info = reader.info();
  NEPHRO_CHECK(max_side > 0, "thumbnail size must be positive");
  const double w0 = static_cast<double>(info.levels[0].width), h0 = static_cast<double>(info.levels[0].height);
  const double s = std::max(1.0, std::max(w0, h0) / max_side);
  const int tw = std::max(1, static_cast<int>(std::ceil(w0 / s - 1e-9)));
  const int th = std::max(1, static_cast<int>(std::ceil(h0 / s - 1e-9)));
  // The level read_resampled() will use, to bound each block's level-pixel size.
  double ds = 1.0;
  for (const auto& l : info.levels)
    if (l.downsample <= s * (1.0 + 1e-6)) ds = l.downsample;
  const int block = std::max(16, static_cast<int>(std::floor(2048.0 * ds / s)));
  Thumbnail t;
  t.scale_l0 = s;
  t.raw = cv::Mat();
  for (int y = 0; y < th; y += block)
    for (int x = 0; x < tw; x += block) {
      const cv::Rect b(x, y, std::min(block, tw - x), std::min(block, th - y));
      cv::Mat part = read_resampled(reader, cv::Rect2d(b.x * s, b.y * s, b.width * s, b.height * s), b.size());
      if (t.raw.empty()) t.raw = cv::Mat::zeros(th, tw, part.type());
      part.copyTo(t.raw(b));
    }
  return t;
}

cv::Mat ChannelMap::apply(const cv::Mat& raw) const {
  std::vector<cv::Mat> planes, out(3);
  cv::split(raw, planes);
  for (int k = 0; k < 3; ++k) {
    if (src[k] < 0) {
      out[k] = cv::Mat::zeros(raw.size(), CV_8U);
      continue;
    }
    const double scale = 255.0 / (hi[k] - lo[k]);
    planes[src[k]].convertTo(out[k], CV_8U, scale, -lo[k] * scale);  // as io::to_rgb8
  }
  cv::Mat rgb;
  cv::merge(out, rgb);
  return rgb;
}

ChannelMap make_channel_map(const Thumbnail& thumb, const io::ImageReadOptions& options) {
  const int n = thumb.raw.channels();
  std::vector<int> sel = options.channels;
  if (sel.empty()) sel = n == 1 ? std::vector<int>{0, 0, 0} : n == 2 ? std::vector<int>{0, 1, -1}
                                                                     : std::vector<int>{0, 1, 2};
  NEPHRO_CHECK(sel.size() <= 3, "--channels lists at most 3 channels (R, G, B); got ", sel.size());
  while (sel.size() < 3) sel.push_back(-1);
  for (int c : sel)
    NEPHRO_CHECK(c >= -1 && c < n, "--channels: channel ", c, " requested but the slide has ", n, " channel(s)");
  std::vector<cv::Mat> planes;
  cv::split(thumb.raw, planes);
  const bool eight_bit = thumb.raw.depth() == CV_8U;
  ChannelMap m;
  for (int k = 0; k < 3; ++k) {
    m.src[k] = sel[k];
    if (sel[k] < 0) continue;
    double lo = 0, hi = 255;
    switch (options.window) {
      case io::WindowMode::kAuto:
        if (!eight_bit) {
          lo = percentile(planes[sel[k]], options.percentile_low);
          hi = percentile(planes[sel[k]], options.percentile_high);
        }
        break;
      case io::WindowMode::kPercentile:
        NEPHRO_CHECK(options.percentile_low >= 0 && options.percentile_high <= 100 &&
                         options.percentile_low < options.percentile_high,
                     "percentile window must satisfy 0 <= low < high <= 100");
        lo = percentile(planes[sel[k]], options.percentile_low);
        hi = percentile(planes[sel[k]], options.percentile_high);
        break;
      case io::WindowMode::kMinMax:
        NEPHRO_CHECK(options.window_max > options.window_min, "intensity window max (", options.window_max,
                     ") must exceed min (", options.window_min, ")");
        lo = options.window_min;
        hi = options.window_max;
        break;
      case io::WindowMode::kFullRange:
        hi = eight_bit ? 255 : 65535;
        break;
    }
    if (hi <= lo) hi = lo + 1;
    m.lo[k] = lo;
    m.hi[k] = hi;
  }
  return m;
}

cv::Mat foreground_signal(const cv::Mat& rgb8, bool brightfield) {
  cv::Mat grey;
  cv::cvtColor(rgb8, grey, cv::COLOR_RGB2GRAY);
  if (brightfield) grey = 255 - grey;
  return grey;
}

cv::Mat detect_tissue(const cv::Mat& signal, double scale_l0, double mpp_l0, const TissueOptions& options) {
  if (options.mode == TissueMode::kNone) return cv::Mat(signal.size(), CV_8U, cv::Scalar(255));
  const double um_per_px = scale_l0 * mpp_l0;
  cv::Mat s = signal;
  const double sigma = options.smooth_um / um_per_px;
  if (sigma >= 0.5) cv::GaussianBlur(signal, s, cv::Size(0, 0), sigma, sigma, cv::BORDER_REFLECT);
  // Otsu on a log scale: the signal has three populations (background, tissue, bright
  // objects); on a linear scale Otsu may split objects from tissue, on a log scale it
  // splits background from the rest.
  cv::Mat lut(1, 256, CV_8U);
  for (int i = 0; i < 256; ++i) lut.at<uint8_t>(i) = cv::saturate_cast<uint8_t>(255.0 * std::log1p(i) / std::log(256.0));
  cv::Mat logs;
  cv::LUT(s, lut, logs);
  cv::Mat mask;
  cv::threshold(logs, mask, 0, 255, cv::THRESH_BINARY | cv::THRESH_OTSU);
  // Fill holes: background not reachable from the border.
  cv::Mat padded;
  cv::copyMakeBorder(mask, padded, 1, 1, 1, 1, cv::BORDER_CONSTANT, cv::Scalar(0));
  cv::floodFill(padded, cv::Point(0, 0), cv::Scalar(128));
  cv::Mat inner = padded(cv::Rect(1, 1, mask.cols, mask.rows));
  mask.setTo(255, inner == 0);
  // Drop specks.
  cv::Mat labels, stats, centroids;
  const int n = cv::connectedComponentsWithStats(mask, labels, stats, centroids, 8, CV_32S);
  const double min_px = options.min_speck_um2 / (um_per_px * um_per_px);
  for (int i = 1; i < n; ++i)
    if (stats.at<int>(i, cv::CC_STAT_AREA) < min_px) mask.setTo(0, labels == i);
  return mask;
}

TilePlan plan_tiles(cv::Size work_size, const cv::Rect& area, int tile, int halo, const cv::Mat& tissue,
                    double work_to_thumb) {
  NEPHRO_CHECK(halo >= 0 && tile > 2 * halo, "--tile (", tile, ") must exceed twice --halo (", halo, ")");
  NEPHRO_CHECK(!area.empty(), "processed area is empty");
  TilePlan plan;
  plan.work_size = work_size;
  plan.area = area;
  plan.tile = tile;
  plan.halo = halo;
  const int stride = tile - 2 * halo;
  plan.cols = (area.width + stride - 1) / stride;
  plan.rows = (area.height + stride - 1) / stride;
  const cv::Rect slide(0, 0, work_size.width, work_size.height);
  for (int r = 0; r < plan.rows; ++r)
    for (int c = 0; c < plan.cols; ++c) {
      Tile t;
      t.index = r * plan.cols + c;
      t.row = r;
      t.col = c;
      t.core = cv::Rect(area.x + c * stride, area.y + r * stride, stride, stride) & area;
      t.read = cv::Rect(t.core.x - halo, t.core.y - halo, t.core.width + 2 * halo, t.core.height + 2 * halo) & slide;
      const int x0 = std::clamp(static_cast<int>(std::floor(t.core.x * work_to_thumb)), 0, tissue.cols - 1);
      const int y0 = std::clamp(static_cast<int>(std::floor(t.core.y * work_to_thumb)), 0, tissue.rows - 1);
      const int x1 = std::clamp(static_cast<int>(std::ceil((t.core.x + t.core.width) * work_to_thumb)), x0 + 1,
                                tissue.cols);
      const int y1 = std::clamp(static_cast<int>(std::ceil((t.core.y + t.core.height) * work_to_thumb)), y0 + 1,
                                tissue.rows);
      if (cv::countNonZero(tissue(cv::Rect(x0, y0, x1 - x0, y1 - y0))) > 0) plan.tiles.push_back(t);
    }
  return plan;
}

}  // namespace nephroseg::slide
