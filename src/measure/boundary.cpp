#include "measure/boundary.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <unordered_map>

namespace nephroseg::measure::detail {

namespace {
double cross(cv::Point2d a, cv::Point2d b) { return a.x * b.y - a.y * b.x; }
}  // namespace

Boundary::Boundary(const cv::Mat& field, double level, double cell_px) : field_(field), cell_(cell_px) {
  const int W = field.cols, H = field.rows;
  auto v = [&](int x, int y) { return static_cast<double>(field.at<float>(y, x)) - level; };
  // Edge keys: 2*(y*W+x) horizontal edge (x,y)-(x+1,y); +1 vertical edge (x,y)-(x,y+1).
  auto crossing = [&](int64_t key) {
    const int64_t cell = key / 2;
    const int x = static_cast<int>(cell % W), y = static_cast<int>(cell / W);
    const bool vertical = key % 2;
    const double v0 = v(x, y), v1 = vertical ? v(x, y + 1) : v(x + 1, y);
    const double t = v0 / (v0 - v1);
    return vertical ? cv::Point2d(x, y + t) : cv::Point2d(x + t, y);
  };
  std::vector<std::array<int64_t, 2>> seg_keys;
  for (int y = 0; y + 1 < H; ++y)
    for (int x = 0; x + 1 < W; ++x) {
      const double c0 = v(x, y), c1 = v(x + 1, y), c2 = v(x + 1, y + 1), c3 = v(x, y + 1);
      const bool b0 = c0 > 0, b1 = c1 > 0, b2 = c2 > 0, b3 = c3 > 0;
      const int64_t e0 = 2 * (int64_t(y) * W + x), e1 = 2 * (int64_t(y) * W + x + 1) + 1,
                    e2 = 2 * (int64_t(y + 1) * W + x), e3 = 2 * (int64_t(y) * W + x) + 1;
      std::vector<int64_t> crossed;
      if (b0 != b1) crossed.push_back(e0);
      if (b1 != b2) crossed.push_back(e1);
      if (b3 != b2) crossed.push_back(e2);
      if (b0 != b3) crossed.push_back(e3);
      if (crossed.size() == 2) {
        seg_keys.push_back({crossed[0], crossed[1]});
      } else if (crossed.size() == 4) {
        const bool centre = (c0 + c1 + c2 + c3) / 4 > 0;
        if (centre == b0) {  // c0 and c2 joined through the centre: cut off c1 and c3
          seg_keys.push_back({e0, e1});
          seg_keys.push_back({e2, e3});
        } else {
          seg_keys.push_back({e0, e3});
          seg_keys.push_back({e1, e2});
        }
      }
    }
  segs_.reserve(seg_keys.size());
  std::unordered_map<int64_t, std::array<int, 2>> by_edge;
  by_edge.reserve(seg_keys.size() * 2);
  for (size_t i = 0; i < seg_keys.size(); ++i) {
    segs_.push_back({crossing(seg_keys[i][0]), crossing(seg_keys[i][1])});
    for (int k = 0; k < 2; ++k) {
      auto it = by_edge.try_emplace(seg_keys[i][k], std::array<int, 2>{-1, -1}).first;
      (it->second[0] < 0 ? it->second[0] : it->second[1]) = static_cast<int>(i);
    }
  }
  // Grid of segments.
  gw_ = static_cast<int>(std::ceil(W / cell_)) + 1;
  gh_ = static_cast<int>(std::ceil(H / cell_)) + 1;
  grid_.assign(static_cast<size_t>(gw_) * gh_, {});
  for (size_t i = 0; i < segs_.size(); ++i) {
    const auto& s = segs_[i];
    const int x0 = static_cast<int>(std::floor(std::min(s.a.x, s.b.x) / cell_));
    const int x1 = static_cast<int>(std::floor(std::max(s.a.x, s.b.x) / cell_));
    const int y0 = static_cast<int>(std::floor(std::min(s.a.y, s.b.y) / cell_));
    const int y1 = static_cast<int>(std::floor(std::max(s.a.y, s.b.y) / cell_));
    for (int gy = std::max(0, y0); gy <= std::min(gh_ - 1, y1); ++gy)
      for (int gx = std::max(0, x0); gx <= std::min(gw_ - 1, x1); ++gx)
        grid_[static_cast<size_t>(gy) * gw_ + gx].push_back(static_cast<int>(i));
  }
  // Chain segments into curves through their shared edge crossings.
  std::vector<char> used(seg_keys.size(), 0);
  auto other_seg = [&](int64_t key, int s) {
    const auto& pair = by_edge[key];
    return pair[0] == s ? pair[1] : pair[0];
  };
  for (size_t start = 0; start < seg_keys.size(); ++start) {
    if (used[start]) continue;
    used[start] = 1;
    // Walk forward from key[1], then backward from key[0].
    std::vector<int64_t> forward{seg_keys[start][0], seg_keys[start][1]};
    bool closed = false;
    for (int dir = 0; dir < 2 && !closed; ++dir) {
      int s = static_cast<int>(start);
      int64_t key = dir == 0 ? seg_keys[start][1] : seg_keys[start][0];
      std::vector<int64_t> chain;
      for (;;) {
        const int n = other_seg(key, s);
        if (n < 0) break;
        if (used[n]) {
          if (n == static_cast<int>(start)) closed = true;
          break;
        }
        used[n] = 1;
        key = seg_keys[n][0] == key ? seg_keys[n][1] : seg_keys[n][0];
        chain.push_back(key);
        s = n;
      }
      if (dir == 0) {
        forward.insert(forward.end(), chain.begin(), chain.end());
      } else {
        std::reverse(chain.begin(), chain.end());
        chain.insert(chain.end(), forward.begin(), forward.end());
        forward.swap(chain);
      }
    }
    BoundaryCurve curve;
    curve.closed = closed;
    if (closed && forward.size() > 1 && forward.back() == forward.front()) forward.pop_back();
    for (int64_t k : forward) curve.points.push_back(crossing(k));
    curves_.push_back(std::move(curve));
  }
}

double Boundary::sample(cv::Point2d p) const {
  const int W = field_.cols, H = field_.rows;
  const double x = std::clamp(p.x, 0.0, W - 1.0), y = std::clamp(p.y, 0.0, H - 1.0);
  const int x0 = std::min(static_cast<int>(x), W - 2 < 0 ? 0 : W - 2);
  const int y0 = std::min(static_cast<int>(y), H - 2 < 0 ? 0 : H - 2);
  const double fx = x - x0, fy = y - y0;
  const int x1 = std::min(x0 + 1, W - 1), y1 = std::min(y0 + 1, H - 1);
  const double a = field_.at<float>(y0, x0), b = field_.at<float>(y0, x1), c = field_.at<float>(y1, x0),
               d = field_.at<float>(y1, x1);
  return (1 - fy) * ((1 - fx) * a + fx * b) + fy * ((1 - fx) * c + fx * d);
}

double Boundary::cast(cv::Point2d o, cv::Point2d d, double t_min, double t_max) const {
  // Amanatides-Woo traversal of the segment grid.
  int gx = static_cast<int>(std::floor(o.x / cell_)), gy = static_cast<int>(std::floor(o.y / cell_));
  const int sx = d.x > 0 ? 1 : -1, sy = d.y > 0 ? 1 : -1;
  const double inf = std::numeric_limits<double>::infinity();
  double tmx = d.x != 0 ? ((gx + (sx > 0 ? 1 : 0)) * cell_ - o.x) / d.x : inf;
  double tmy = d.y != 0 ? ((gy + (sy > 0 ? 1 : 0)) * cell_ - o.y) / d.y : inf;
  const double dtx = d.x != 0 ? cell_ / std::abs(d.x) : inf, dty = d.y != 0 ? cell_ / std::abs(d.y) : inf;
  double best = inf, t_cell = 0;
  const double W = field_.cols - 1.0, H = field_.rows - 1.0;
  while (t_cell <= t_max) {
    if (gx < 0 || gy < 0 || gx >= gw_ || gy >= gh_) break;
    for (int i : grid_[static_cast<size_t>(gy) * gw_ + gx]) {
      const Seg& s = segs_[i];
      const cv::Point2d e = s.b - s.a;
      const double den = cross(d, e);
      if (std::abs(den) < 1e-12) continue;
      const cv::Point2d ao = s.a - o;
      const double t = cross(ao, e) / den, u = cross(ao, d) / den;
      if (u >= 0 && u <= 1 && t > t_min && t <= t_max && t < best) best = t;
    }
    const double t_next = std::min(tmx, tmy);
    if (best <= t_next) break;
    // Leaving the image without a crossing: truncated.
    const cv::Point2d q = o + d * t_next;
    if (q.x < -0.5 || q.y < -0.5 || q.x > W + 0.5 || q.y > H + 0.5) break;
    t_cell = t_next;
    if (tmx < tmy) {
      gx += sx;
      tmx += dtx;
    } else {
      gy += sy;
      tmy += dty;
    }
  }
  if (!std::isfinite(best)) return -1;
  const cv::Point2d hit = o + d * best;
  if (hit.x < 0 || hit.y < 0 || hit.x > W || hit.y > H) return -1;
  return best;
}

double Boundary::nearest(cv::Point2d p, double max_r) const {
  double best = std::numeric_limits<double>::infinity();
  if (segs_.empty()) return best;  // no boundary at all: nothing is near
  const int gx = static_cast<int>(std::floor(p.x / cell_)), gy = static_cast<int>(std::floor(p.y / cell_));
  // Rings beyond the grid hold no segment: stop there even when max_r is huge (the
  // distance transform of a mask without background is ~FLT_MAX).
  const int grid_reach = std::max({gx + 1, gw_ - gx, gy + 1, gh_ - gy});
  const double want = std::min(std::ceil(max_r / cell_) + 1.0, static_cast<double>(grid_reach));
  const int max_ring = want > 0 ? static_cast<int>(want) : 0;
  auto visit = [&](int x, int y) {
    if (x < 0 || y < 0 || x >= gw_ || y >= gh_) return;
    for (int i : grid_[static_cast<size_t>(y) * gw_ + x]) {
      const Seg& s = segs_[i];
      const cv::Point2d e = s.b - s.a;
      const double len2 = e.dot(e);
      const double u = len2 > 0 ? std::clamp((p - s.a).dot(e) / len2, 0.0, 1.0) : 0.0;
      const cv::Point2d q = s.a + u * e;
      best = std::min(best, std::hypot(p.x - q.x, p.y - q.y));
    }
  };
  for (int r = 0; r <= max_ring; ++r) {
    // The cells at Chebyshev distance r from (gx, gy): top and bottom rows, then the
    // two columns between them (O(r) per ring, not O(r^2)).
    for (int x = gx - r; x <= gx + r; ++x) {
      visit(x, gy - r);
      if (r > 0) visit(x, gy + r);
    }
    for (int y = gy - r + 1; y <= gy + r - 1; ++y) {
      visit(gx - r, y);
      visit(gx + r, y);
    }
    if (best <= r * cell_) break;
  }
  return best;
}

}  // namespace nephroseg::measure::detail
