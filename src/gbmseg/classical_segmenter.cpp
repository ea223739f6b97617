#include "nephroseg/gbmseg/classical_segmenter.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <opencv2/imgproc.hpp>

#include "nephroseg/core/error.h"
#include "nephroseg/gbmseg/classical_features.h"

namespace nephroseg::gbmseg {

namespace {

cv::Mat gaussian(const cv::Mat& src, double sigma) {
  cv::Mat out;
  if (sigma <= 0) return src.clone();
  cv::GaussianBlur(src, out, cv::Size(0, 0), sigma, sigma, cv::BORDER_REFLECT);
  return out;
}

// Per-pixel feature stack (each CV_32FC1, work resolution), scales in work pixels.
std::vector<cv::Mat> pixel_features(const cv::Mat& z, const ClassicalSegmenterOptions& o, double f) {
  std::vector<cv::Mat> maps;
  for (double s : o.intensity_scales) maps.push_back(gaussian(z, s * f));
  for (double s : o.texture_scales) {
    const cv::Mat m = gaussian(z, s * f);
    cv::Mat var = gaussian(z.mul(z), s * f) - m.mul(m);
    cv::max(var, 0.0, var);
    cv::Mat sd;
    cv::sqrt(var, sd);
    maps.push_back(sd);
  }
  const cv::Mat d1 = (cv::Mat_<float>(1, 3) << -0.5f, 0.0f, 0.5f);
  const cv::Mat d2 = (cv::Mat_<float>(1, 3) << 1.0f, -2.0f, 1.0f);
  const cv::Mat id = (cv::Mat_<float>(1, 1) << 1.0f);
  for (double s0 : o.ridge_scales) {
    const double s = s0 * f;
    const cv::Mat g = gaussian(z, s);
    cv::Mat dxx, dyy, dxy;
    cv::sepFilter2D(g, dxx, CV_32F, d2, id, cv::Point(-1, -1), 0, cv::BORDER_REFLECT);
    cv::sepFilter2D(g, dyy, CV_32F, id, d2, cv::Point(-1, -1), 0, cv::BORDER_REFLECT);
    cv::sepFilter2D(g, dxy, CV_32F, d1, d1, cv::Point(-1, -1), 0, cv::BORDER_REFLECT);
    cv::Mat half_trace = (dxx + dyy) * 0.5;
    cv::Mat diff = (dxx - dyy) * 0.5;
    cv::Mat root;
    cv::sqrt(diff.mul(diff) + dxy.mul(dxy), root);
    maps.push_back((half_trace - root) * (s * s));
    maps.push_back((half_trace + root) * (s * s));
  }
  return maps;
}

cv::Mat disc(int r) { return cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(2 * r + 1, 2 * r + 1)); }

// Fills the background components not touching the image border that are smaller
// than max_area pixels (capillary lumens inside closed membrane loops stay open).
cv::Mat fill_small_holes(const cv::Mat& mask, double max_area) {
  cv::Mat bg = mask == 0, cc, stats, centroids;
  const int n = cv::connectedComponentsWithStats(bg, cc, stats, centroids, 4, CV_32S);
  std::vector<uint8_t> fill(n, 0);
  for (int l = 1; l < n; ++l) {
    const int x = stats.at<int>(l, cv::CC_STAT_LEFT), y = stats.at<int>(l, cv::CC_STAT_TOP);
    const int bw = stats.at<int>(l, cv::CC_STAT_WIDTH), bh = stats.at<int>(l, cv::CC_STAT_HEIGHT);
    const bool border = x == 0 || y == 0 || x + bw == mask.cols || y + bh == mask.rows;
    fill[l] = !border && stats.at<int>(l, cv::CC_STAT_AREA) <= max_area;
  }
  cv::Mat out = mask.clone();
  for (int y = 0; y < mask.rows; ++y)
    for (int x = 0; x < mask.cols; ++x)
      if (fill[cc.at<int>(y, x)]) out.at<uint8_t>(y, x) = 255;
  return out;
}

}  // namespace

namespace {

using Prototypes = std::vector<std::vector<double>>;

// The standardised feature maps at work resolution and the seed discs' geometry.
struct Work {
  std::vector<cv::Mat> maps;  // C maps, h x w, CV_32F, continuous
  int h = 0, w = 0, r = 1;    // work size, seed disc radius (work px)
  double f = 1.0;             // work / original scale
};

// Mean feature vector over the seed disc around c.
std::vector<double> prototype(const Work& wk, const cv::Point& c) {
  const int C = static_cast<int>(wk.maps.size()), r = wk.r;
  std::vector<double> v(C, 0.0);
  int n = 0;
  for (int y = std::max(0, c.y - r); y <= std::min(wk.h - 1, c.y + r); ++y)
    for (int x = std::max(0, c.x - r); x <= std::min(wk.w - 1, c.x + r); ++x) {
      if ((x - c.x) * (x - c.x) + (y - c.y) * (y - c.y) > r * r) continue;
      for (int k = 0; k < C; ++k) v[k] += wk.maps[k].at<float>(y, x);
      ++n;
    }
  for (auto& e : v) e /= std::max(n, 1);
  return v;
}

// Squared spread of the seed pixels around their own disc means, per channel.
void accumulate_spread(const Work& wk, const std::vector<cv::Point>& seeds, const Prototypes& protos,
                       std::vector<double>& within, int64_t& n) {
  const int C = static_cast<int>(wk.maps.size()), r = wk.r;
  for (size_t i = 0; i < seeds.size(); ++i) {
    const cv::Point c = seeds[i];
    for (int y = std::max(0, c.y - r); y <= std::min(wk.h - 1, c.y + r); ++y)
      for (int x = std::max(0, c.x - r); x <= std::min(wk.w - 1, c.x + r); ++x) {
        if ((x - c.x) * (x - c.x) + (y - c.y) * (y - c.y) > r * r) continue;
        for (int k = 0; k < C; ++k) {
          const double e = wk.maps[k].at<float>(y, x) - protos[i][k];
          within[k] += e * e;
        }
        ++n;
      }
  }
}

// Weights every channel by the inverse pooled spread of the seed pixels around their
// own disc mean: channels that are stable inside a seed disc count more.
void weight_by_seed_spread(Work& wk, const std::vector<cv::Point>& pos, const std::vector<cv::Point>& neg,
                           Prototypes& pos_proto, Prototypes& neg_proto, double lambda) {
  const int C = static_cast<int>(wk.maps.size());
  std::vector<double> within(C, 0.0);
  int64_t n = 0;
  accumulate_spread(wk, pos, pos_proto, within, n);
  accumulate_spread(wk, neg, neg_proto, within, n);
  for (int k = 0; k < C; ++k) {
    const double scale = 1.0 / std::sqrt(within[k] / std::max<int64_t>(n, 1) + lambda + 1e-6);
    wk.maps[k] *= scale;
    for (auto& pr : pos_proto) pr[k] *= scale;
    for (auto& pr : neg_proto) pr[k] *= scale;
  }
}

// Distance of every pixel to its nearest prototype (feature-major loops).
cv::Mat nearest_distance(const Work& wk, const Prototypes& protos) {
  const int C = static_cast<int>(wk.maps.size()), npx = wk.h * wk.w;
  cv::Mat best(wk.h, wk.w, CV_32F, cv::Scalar(std::numeric_limits<float>::infinity()));
  float* b = best.ptr<float>();
  std::vector<float> acc(npx);
  for (const auto& pr : protos) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int k = 0; k < C; ++k) {
      const float* c = wk.maps[k].ptr<float>();
      const float m = static_cast<float>(pr[k]);
      for (int i = 0; i < npx; ++i) {
        const float e = c[i] - m;
        acc[i] += e * e;
      }
    }
    for (int i = 0; i < npx; ++i) b[i] = std::min(b[i], acc[i]);
  }
  cv::sqrt(best, best);
  return best;
}

// No negatives: the pixels farthest from every positive stand in for them.
Prototypes stand_in_negatives(const Work& wk, const cv::Mat& dpos) {
  Prototypes neg;
  cv::Mat sorted = dpos.reshape(1, 1).clone();
  cv::sort(sorted, sorted, cv::SORT_EVERY_ROW | cv::SORT_ASCENDING);
  const float cut = sorted.at<float>(0, static_cast<int>(sorted.cols * 0.8));
  const int step = std::max(1, std::min(wk.h, wk.w) / 12);
  for (int y = step / 2; y < wk.h; y += step)
    for (int x = step / 2; x < wk.w; x += step)
      if (dpos.at<float>(y, x) >= cut) neg.push_back(prototype(wk, cv::Point(x, y)));
  return neg;
}

// k-means centres of the pixels confidently on one side of the score.
Prototypes confident_centres(const Work& wk, const cv::Mat& score, bool fg,
                             const ClassicalSegmenterOptions& o) {
  const int C = static_cast<int>(wk.maps.size()), npx = wk.h * wk.w;
  std::vector<int> idx;
  const float* sc = score.ptr<float>();
  for (int i = 0; i < npx; ++i)
    if (fg ? sc[i] > o.self_training_margin : sc[i] < -o.self_training_margin) idx.push_back(i);
  Prototypes out;
  const int K = o.self_training_clusters;
  if (static_cast<int>(idx.size()) < 4 * K) return out;
  const int max_samples = 4000;
  const size_t stride = std::max<size_t>(1, idx.size() / max_samples);
  cv::Mat samples(static_cast<int>((idx.size() + stride - 1) / stride), C, CV_32F);
  for (size_t j = 0, row = 0; j < idx.size(); j += stride, ++row)
    for (int k = 0; k < C; ++k) samples.at<float>(static_cast<int>(row), k) = wk.maps[k].ptr<float>()[idx[j]];
  cv::Mat labels_km, ctr;
  cv::setRNGSeed(12345);
  cv::kmeans(samples, K, labels_km,
             cv::TermCriteria(cv::TermCriteria::COUNT | cv::TermCriteria::EPS, 20, 1e-3),
             /*attempts=*/1, cv::KMEANS_PP_CENTERS, ctr);
  for (int c = 0; c < ctr.rows; ++c) {
    std::vector<double> v(C);
    for (int k = 0; k < C; ++k) v[k] = ctr.at<float>(c, k);
    out.push_back(v);
  }
  return out;
}

// Self-training: the confidently classified pixels of each class are clustered
// (k-means) and the cluster centres join the seed prototypes, so each class model
// covers the appearances the few seeds missed (e.g. the cytoplasm right next to a
// membrane, which the negatives, sampled far away, never see).
cv::Mat self_train(const Work& wk, cv::Mat score, const Prototypes& pos_proto, const Prototypes& neg_proto,
                   const ClassicalSegmenterOptions& o) {
  for (int it = 0; it < o.self_training_rounds; ++it) {
    auto fg_c = confident_centres(wk, score, true, o), bg_c = confident_centres(wk, score, false, o);
    Prototypes P = pos_proto, N = neg_proto;
    P.insert(P.end(), fg_c.begin(), fg_c.end());
    N.insert(N.end(), bg_c.begin(), bg_c.end());
    if (N.empty()) break;
    score = gaussian(nearest_distance(wk, N) - nearest_distance(wk, P), o.score_smoothing_px * wk.f) -
            o.score_bias;
  }
  return score;
}

// The mask from the score: > 0, or refined by grabCut (off by default).
cv::Mat threshold_score(const Work& wk, const cv::Mat& score, const std::vector<cv::Point>& pos,
                        const std::vector<cv::Point>& neg, const ClassicalSegmenterOptions& o) {
  if (o.grabcut_iterations <= 0) return score > 0;
  // 3-channel image for grabCut's colour models: the score and two appearance maps.
  auto to8 = [](const cv::Mat& m, double lo, double hi) {
    cv::Mat out;
    m.convertTo(out, CV_8U, 255.0 / (hi - lo), -lo * 255.0 / (hi - lo));
    return out;
  };
  std::vector<cv::Mat> ch{to8(score, -3.0, 3.0), to8(wk.maps[0], -3.0, 3.0),
                          to8(wk.maps[o.intensity_scales.size()], -3.0, 3.0)};
  cv::Mat feat;
  cv::merge(ch, feat);
  cv::Mat gc(wk.h, wk.w, CV_8UC1);
  for (int y = 0; y < wk.h; ++y)
    for (int x = 0; x < wk.w; ++x)
      gc.at<uint8_t>(y, x) = score.at<float>(y, x) > 0 ? cv::GC_PR_FGD : cv::GC_PR_BGD;
  for (const auto& c : neg) cv::circle(gc, c, wk.r, cv::GC_BGD, cv::FILLED);
  for (const auto& c : pos) cv::circle(gc, c, wk.r, cv::GC_FGD, cv::FILLED);
  bool has_fg = false, has_bg = false;
  for (int y = 0; y < wk.h && !(has_fg && has_bg); ++y)
    for (int x = 0; x < wk.w; ++x) {
      const uint8_t v = gc.at<uint8_t>(y, x);
      has_fg = has_fg || v == cv::GC_FGD || v == cv::GC_PR_FGD;
      has_bg = has_bg || v == cv::GC_BGD || v == cv::GC_PR_BGD;
    }
  if (!(has_fg && has_bg)) return score > 0;
  cv::Mat bgd, fgd;
  cv::grabCut(feat, gc, cv::Rect(), bgd, fgd, o.grabcut_iterations, cv::GC_INIT_WITH_MASK);
  return (gc == cv::GC_FGD) | (gc == cv::GC_PR_FGD);
}

// Thin attachments (foot processes, leaks along cell borders) are narrower than the
// membrane: open with a disc scaled to the membrane's own width. For a band of width
// W the distance-to-background values are uniform on [0, W/2], so W ~ 4 x their median.
void open_by_width(cv::Mat& mask, double width_opening) {
  cv::Mat dt;
  cv::distanceTransform(mask, dt, cv::DIST_L2, cv::DIST_MASK_PRECISE);
  std::vector<float> v;
  v.reserve(cv::countNonZero(mask));
  for (int y = 0; y < mask.rows; ++y)
    for (int x = 0; x < mask.cols; ++x)
      if (mask.at<uint8_t>(y, x)) v.push_back(dt.at<float>(y, x));
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  const double width = 4.0 * v[v.size() / 2];
  const int radius = static_cast<int>(std::lround(width_opening * width / 2));
  if (radius >= 1) cv::morphologyEx(mask, mask, cv::MORPH_OPEN, disc(radius));
}

// Texture channels straddle an edge and pull the boundary inwards; grow the mask back
// by up to `px` into pixels whose fine-scale intensity alone is closer to a positive
// than to a negative prototype.
void grow_boundary(const Work& wk, cv::Mat& mask, const Prototypes& pos_proto, const Prototypes& neg_proto,
                   int px) {
  auto nearest_1d = [&](const Prototypes& protos) {
    cv::Mat best(wk.h, wk.w, CV_32F, cv::Scalar(std::numeric_limits<float>::infinity()));
    for (const auto& pr : protos) {
      cv::Mat d = cv::abs(wk.maps[0] - pr[0]);
      best = cv::min(best, d);
    }
    return best;
  };
  cv::Mat like_fg = neg_proto.empty() ? cv::Mat(wk.h, wk.w, CV_8U, cv::Scalar(255))
                                      : cv::Mat(nearest_1d(neg_proto) > nearest_1d(pos_proto));
  const cv::Mat k3 = cv::getStructuringElement(cv::MORPH_CROSS, cv::Size(3, 3));
  for (int i = 0; i < px; ++i) {
    cv::Mat grown;
    cv::dilate(mask, grown, k3);
    mask = mask | (grown & like_fg);
  }
}

// Components holding a positive seed are kept; an unseeded one only when it is at least
// unseeded_min_area x the largest seeded component (a membrane the prompts missed is as
// large as the prompted ones; stray blobs are not).
void keep_seeded_components(cv::Mat& mask, const std::vector<cv::Point>& pos, double unseeded_min_area) {
  cv::Mat cc, stats, centroids;
  const int n = cv::connectedComponentsWithStats(mask, cc, stats, centroids, 8, CV_32S);
  std::vector<uint8_t> keep(n, 0);
  int largest_seeded = 0;
  for (const auto& c : pos) {
    const int l = cc.at<int>(c.y, c.x);
    if (l > 0) {
      keep[l] = 1;
      largest_seeded = std::max(largest_seeded, stats.at<int>(l, cv::CC_STAT_AREA));
    }
  }
  if (unseeded_min_area > 0 && largest_seeded > 0)
    for (int l = 1; l < n; ++l)
      if (stats.at<int>(l, cv::CC_STAT_AREA) >= unseeded_min_area * largest_seeded) keep[l] = 1;
  for (int y = 0; y < mask.rows; ++y)
    for (int x = 0; x < mask.cols; ++x) mask.at<uint8_t>(y, x) = keep[cc.at<int>(y, x)] ? 255 : 0;
}

// The clean-up after thresholding, in order (each step switched by its option).
void clean_up(const Work& wk, cv::Mat& mask, const std::vector<cv::Point>& pos, const Prototypes& pos_proto,
              const Prototypes& neg_proto, const ClassicalSegmenterOptions& o) {
  if (o.width_opening > 0 && cv::countNonZero(mask) > 0) open_by_width(mask, o.width_opening);
  if (o.boundary_growth_px > 0 && !o.intensity_scales.empty())
    grow_boundary(wk, mask, pos_proto, neg_proto, o.boundary_growth_px);
  if (o.open_radius_px > 0) cv::morphologyEx(mask, mask, cv::MORPH_OPEN, disc(o.open_radius_px));
  if (o.close_radius_px > 0) cv::morphologyEx(mask, mask, cv::MORPH_CLOSE, disc(o.close_radius_px));
  if (o.keep_seeded_components) keep_seeded_components(mask, pos, o.unseeded_min_area);
  if (o.max_hole_fraction > 0) mask = fill_small_holes(mask, o.max_hole_fraction * wk.h * wk.w);
}

}  // namespace

cv::Mat classical_point_segmentation(const cv::Mat& image, const std::vector<cv::Point2f>& points,
                                     const std::vector<int>& labels, const ClassicalSegmenterOptions& o) {
  NEPHRO_CHECK(!image.empty(), "classical segmenter: empty image");
  NEPHRO_CHECK(image.depth() == CV_8U && (image.channels() == 1 || image.channels() == 3),
               "classical segmenter: expected a CV_8UC3 RGB or CV_8UC1 image, got type ", image.type());
  NEPHRO_CHECK(points.size() == labels.size(), "classical segmenter: ", points.size(), " points but ",
               labels.size(), " labels");
  for (int l : labels) NEPHRO_CHECK(l == 0 || l == 1, "classical segmenter: labels must be 0 or 1, got ", l);

  const int H = image.rows, W = image.cols;
  Work wk;
  wk.f = (o.work_size > 0 && std::max(H, W) > o.work_size) ? static_cast<double>(o.work_size) / std::max(H, W)
                                                           : 1.0;
  const double f = wk.f;
  const int h = wk.h = std::max(1, static_cast<int>(std::lround(H * f)));
  const int w = wk.w = std::max(1, static_cast<int>(std::lround(W * f)));

  // Seeds at work resolution (points outside the image are ignored).
  std::vector<cv::Point> pos, neg;
  for (size_t i = 0; i < points.size(); ++i) {
    const cv::Point2f& p = points[i];
    if (!(p.x >= 0 && p.y >= 0 && p.x < W && p.y < H)) continue;
    const cv::Point q(std::clamp(static_cast<int>(p.x * f), 0, w - 1),
                      std::clamp(static_cast<int>(p.y * f), 0, h - 1));
    (labels[i] == 1 ? pos : neg).push_back(q);
  }
  if (pos.empty()) return cv::Mat::zeros(H, W, CV_8UC1);

  // Feature maps, each standardised over the image.
  cv::Mat grey;
  if (image.channels() == 3)
    cv::cvtColor(image, grey, cv::COLOR_RGB2GRAY);
  else
    grey = image;
  cv::Mat z = robust_normalise(grey);
  if (f != 1.0) cv::resize(z, z, cv::Size(w, h), 0, 0, cv::INTER_AREA);
  wk.maps = pixel_features(z, o, f);
  for (auto& m : wk.maps) {
    cv::Scalar mean, sd;
    cv::meanStdDev(m, mean, sd);
    m = (m - mean[0]) / std::max(sd[0], 1e-6);
    NEPHRO_CHECK(m.isContinuous(), "classical segmenter: internal map not continuous");
  }

  // Class prototypes from the seed discs, the score (> 0: membrane-like), the mask.
  wk.r = std::max(1, static_cast<int>(std::lround(o.seed_radius_px * f)));
  Prototypes pos_proto, neg_proto;
  for (const auto& c : pos) pos_proto.push_back(prototype(wk, c));
  for (const auto& c : neg) neg_proto.push_back(prototype(wk, c));
  if (o.within_seed_lambda >= 0)
    weight_by_seed_spread(wk, pos, neg, pos_proto, neg_proto, o.within_seed_lambda);
  const cv::Mat dpos = nearest_distance(wk, pos_proto);
  if (neg_proto.empty()) neg_proto = stand_in_negatives(wk, dpos);
  const cv::Mat dneg =
      neg_proto.empty() ? cv::Mat(h, w, CV_32F, cv::Scalar(1e3f)) : nearest_distance(wk, neg_proto);
  cv::Mat score = gaussian(dneg - dpos, o.score_smoothing_px * f) - o.score_bias;
  score = self_train(wk, score, pos_proto, neg_proto, o);
  cv::Mat mask = threshold_score(wk, score, pos, neg, o);
  clean_up(wk, mask, pos, pos_proto, neg_proto, o);
  if (f != 1.0) {
    cv::Mat up;
    cv::resize(mask, up, cv::Size(W, H), 0, 0, cv::INTER_LINEAR);
    mask = up > 127;
  }
  return mask;
}

ClassicalSegmenter::ClassicalSegmenter(ClassicalSegmenterOptions options) : options_(std::move(options)) {
  NEPHRO_CHECK(options_.seed_radius_px > 0, "ClassicalSegmenter: seed_radius_px must be > 0");
}

std::string ClassicalSegmenter::name() const {
  return "classical (weight-free, seeded prototype classifier + morphology)";
}

cv::Mat ClassicalSegmenter::segment(const cv::Mat& rgb, const std::vector<cv::Point2f>& points,
                                    const std::vector<int>& labels) const {
  return classical_point_segmentation(rgb, points, labels, options_);
}

}  // namespace nephroseg::gbmseg
