#include "nephroseg/measure/thickness.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <opencv2/imgproc.hpp>
#include <random>

#include "measure/boundary.h"
#include "nephroseg/core/error.h"

namespace nephroseg::measure {

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kDeg = kPi / 180.0;

double median_of(std::vector<double> v) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  const size_t k = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + k, v.end());
  double m = v[k];
  if (v.size() % 2 == 0) m = 0.5 * (m + *std::max_element(v.begin(), v.begin() + k));
  return m;
}

double quantile_sorted(const std::vector<double>& s, double q) {
  if (s.empty()) return std::numeric_limits<double>::quiet_NaN();
  const double pos = q * (s.size() - 1);
  const size_t i = static_cast<size_t>(std::floor(pos));
  const double f = pos - i;
  return i + 1 < s.size() ? s[i] * (1 - f) + s[i + 1] * f : s[i];
}

cv::Point2d rotate(cv::Point2d v, double a) {
  const double c = std::cos(a), s = std::sin(a);
  return {v.x * c - v.y * s, v.x * s + v.y * c};
}

// Crossing number (0->1 transitions around the 8-neighbourhood) and neighbour count.
struct Nbh {
  int count = 0, transitions = 0;
};
Nbh neighbourhood(const cv::Mat& sk, int x, int y) {
  static const int dx[8] = {0, 1, 1, 1, 0, -1, -1, -1}, dy[8] = {-1, -1, 0, 1, 1, 1, 0, -1};
  int v[8];
  for (int k = 0; k < 8; ++k) {
    const int xx = x + dx[k], yy = y + dy[k];
    v[k] = (xx >= 0 && yy >= 0 && xx < sk.cols && yy < sk.rows && sk.at<uint8_t>(yy, xx)) ? 1 : 0;
  }
  Nbh n;
  for (int k = 0; k < 8; ++k) {
    n.count += v[k];
    n.transitions += (v[k] == 0 && v[(k + 1) % 8] == 1);
  }
  return n;
}

}  // namespace

std::string estimator_name(Estimator e) {
  return e == Estimator::kOrthogonalIntercept ? "orthogonal_intercept" : "direct";
}

WidthStats width_stats(const std::vector<double>& widths) {
  WidthStats s;
  s.n = static_cast<int>(widths.size());
  if (widths.empty()) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    s.mean = s.harmonic_mean = s.median = s.sd = s.min = s.max = s.q25 = s.q75 = nan;
    return s;
  }
  std::vector<double> sorted = widths;
  std::sort(sorted.begin(), sorted.end());
  double sum = 0, inv = 0;
  int npos = 0;
  for (double w : widths) {
    sum += w;
    if (w > 0) {
      inv += 1.0 / w;
      ++npos;
    }
  }
  s.mean = sum / widths.size();
  s.harmonic_mean = npos > 0 ? npos / inv : std::numeric_limits<double>::quiet_NaN();
  double var = 0;
  for (double w : widths) var += (w - s.mean) * (w - s.mean);
  s.sd = widths.size() > 1 ? std::sqrt(var / (widths.size() - 1)) : 0.0;
  s.median = quantile_sorted(sorted, 0.5);
  s.q25 = quantile_sorted(sorted, 0.25);
  s.q75 = quantile_sorted(sorted, 0.75);
  s.min = sorted.front();
  s.max = sorted.back();
  return s;
}

cv::Mat skeletonize(const cv::Mat& mask) {
  NEPHRO_CHECK(!mask.empty() && mask.channels() == 1, "skeletonize: needs a single-channel mask");
  cv::Mat img = cv::Mat::zeros(mask.rows + 2, mask.cols + 2, CV_8U);
  cv::Mat inner = img(cv::Rect(1, 1, mask.cols, mask.rows));
  cv::Mat nz = mask != 0;
  nz.copyTo(inner);
  img /= 255;
  std::vector<cv::Point> pixels;
  cv::findNonZero(img, pixels);
  std::vector<cv::Point> remove;
  bool changed = true;
  while (changed) {
    changed = false;
    for (int step = 0; step < 2; ++step) {
      remove.clear();
      for (const cv::Point& p : pixels) {
        const uint8_t* up = img.ptr<uint8_t>(p.y - 1);
        const uint8_t* mid = img.ptr<uint8_t>(p.y);
        const uint8_t* dn = img.ptr<uint8_t>(p.y + 1);
        // P2..P9 clockwise from north.
        const int P2 = up[p.x], P3 = up[p.x + 1], P4 = mid[p.x + 1], P5 = dn[p.x + 1], P6 = dn[p.x],
                  P7 = dn[p.x - 1], P8 = mid[p.x - 1], P9 = up[p.x - 1];
        // Guo-Hall conditions (they keep diagonal bands, which Zhang-Suen can erase).
        const int C = (!P2 && (P3 || P4)) + (!P4 && (P5 || P6)) + (!P6 && (P7 || P8)) + (!P8 && (P9 || P2));
        if (C != 1) continue;
        const int N1 = (P9 || P2) + (P3 || P4) + (P5 || P6) + (P7 || P8);
        const int N2 = (P2 || P3) + (P4 || P5) + (P6 || P7) + (P8 || P9);
        const int N = std::min(N1, N2);
        if (N < 2 || N > 3) continue;
        const bool m = step == 0 ? ((P6 || P7 || !P9) && P8) : ((P2 || P3 || !P5) && P4);
        if (m) continue;
        remove.push_back(p);
      }
      for (const cv::Point& p : remove) img.at<uint8_t>(p) = 0;
      if (!remove.empty()) {
        changed = true;
        pixels.erase(std::remove_if(pixels.begin(), pixels.end(),
                                    [&](const cv::Point& p) { return img.at<uint8_t>(p) == 0; }),
                     pixels.end());
      }
    }
  }
  cv::Mat out = img(cv::Rect(1, 1, mask.cols, mask.rows)).clone();
  out *= 255;
  return out;
}

namespace {

void check_thickness_inputs(const cv::Mat& mask_in, const ThicknessOptions& o) {
  NEPHRO_CHECK(o.nm_per_pixel > 0 && std::isfinite(o.nm_per_pixel),
               "nm-per-pixel must be a positive number (got ", o.nm_per_pixel, ")");
  NEPHRO_CHECK(!mask_in.empty() && mask_in.channels() == 1, "thickness: the mask must be a non-empty single-channel image");
  NEPHRO_CHECK(mask_in.cols >= 3 && mask_in.rows >= 3, "thickness: the mask is smaller than 3x3 pixels");
  NEPHRO_CHECK(o.sample_spacing_px > 0, "sample spacing must be > 0 px");
  NEPHRO_CHECK(o.short_factor >= 0.0 && o.short_factor < 1.0, "short factor must be in [0, 1) (got ", o.short_factor,
               ")");
  NEPHRO_CHECK(o.tangential_factor > 1.0, "tangential factor must be > 1 (got ", o.tangential_factor, ")");
  NEPHRO_CHECK(o.max_angle_deg > 0 && o.max_angle_deg < 90, "max angle must be in (0, 90) degrees");
  NEPHRO_CHECK(o.smoothing_sigma_px >= 0, "smoothing sigma must be >= 0");
}

// The best of the two final probes of a golden-section search.
struct GoldenMin {
  double x = 0, f = 0;
};

// Golden-section search for a minimum of f on [lo, hi], `iterations` shrinking steps.
// f is called at the two inner points (lower one first), then once per step; callers
// with side effects in f rely on that order. Ties move the lower bound up.
template <class F>
GoldenMin golden_section_min(F&& f, double lo, double hi, int iterations) {
  const double gr = 0.6180339887498949;
  double x1 = hi - gr * (hi - lo), x2 = lo + gr * (hi - lo);
  double f1 = f(x1);
  double f2 = f(x2);
  for (int it = 0; it < iterations; ++it) {
    if (f1 < f2) {
      hi = x2;
      x2 = x1;
      f2 = f1;
      x1 = hi - gr * (hi - lo);
      f1 = f(x1);
    } else {
      lo = x1;
      x1 = x2;
      f1 = f2;
      x2 = lo + gr * (hi - lo);
      f2 = f(x2);
    }
  }
  return {f1 < f2 ? x1 : x2, std::min(f1, f2)};
}

// The binary mask, its size, and the longest intercept searched.
struct MaskGeometry {
  cv::Mat mask;  // CV_8U, 0 or 255
  int W = 0, H = 0;
  double max_chord = 0;  // longest intercept searched, px
};

// Distance from p (inside the image) along d to the image rectangle's edge.
double image_exit(const MaskGeometry& g, cv::Point2d p, cv::Point2d d) {
  double t = std::numeric_limits<double>::infinity();
  if (d.x > 1e-12) t = std::min(t, (g.W - 1 - p.x) / d.x);
  if (d.x < -1e-12) t = std::min(t, -p.x / d.x);
  if (d.y > 1e-12) t = std::min(t, (g.H - 1 - p.y) / d.y);
  if (d.y < -1e-12) t = std::min(t, -p.y / d.y);
  return std::max(0.0, t);
}

// ---- Orthogonal intercepts --------------------------------------------------------

struct OiSample {
  ThicknessMeasurement m;
  int curve = 0;
  int order = 0;
};

// The shortest chord from boundary point p into the membrane, within max_angle_deg of
// the inward normal; nothing when p is truncated (near the image border, flat
// gradient, no intercept, or a ray that leaves the image before the best chord ends).
std::optional<ThicknessMeasurement> intercept_at(const detail::Boundary& boundary, const MaskGeometry& g,
                                                 const ThicknessOptions& o, cv::Point2d p) {
  if (p.x < o.border_margin_px || p.y < o.border_margin_px || p.x > g.W - 1 - o.border_margin_px ||
      p.y > g.H - 1 - o.border_margin_px)
    return std::nullopt;
  // Inward normal from the gradient of the smoothed mask.
  const cv::Point2d grad(boundary.sample(p + cv::Point2d(1, 0)) - boundary.sample(p - cv::Point2d(1, 0)),
                         boundary.sample(p + cv::Point2d(0, 1)) - boundary.sample(p - cv::Point2d(0, 1)));
  const double gn = cv::norm(grad);
  if (gn < 1e-6) return std::nullopt;
  const cv::Point2d n = grad / gn;
  // A direction whose ray leaves the image before meeting the far boundary
  // may hide the true minimum: such samples are truncated.
  double exit_min = std::numeric_limits<double>::infinity();
  auto chord = [&](double angle) {
    const cv::Point2d d = rotate(n, angle);
    const double t = boundary.cast(p, d, 0.3, g.max_chord);
    // A real intercept runs through the membrane: its midpoint is inside.
    if (t > 0) return boundary.sample(p + d * (0.5 * t)) > 0.5 ? t : std::numeric_limits<double>::infinity();
    exit_min = std::min(exit_min, image_exit(g, p, d));
    return std::numeric_limits<double>::infinity();
  };
  const double amax = o.max_angle_deg * kDeg, coarse = 3.0 * kDeg;
  double best_a = 0, best = chord(0);
  for (double a = -amax; a <= amax + 1e-9; a += coarse) {
    const double c2 = chord(a);
    if (c2 < best) {
      best = c2;
      best_a = a;
    }
  }
  if (!std::isfinite(best)) return std::nullopt;
  // Golden-section refinement around the best coarse angle.
  const GoldenMin fine =
      golden_section_min(chord, std::max(-amax, best_a - coarse), std::min(amax, best_a + coarse), /*iterations=*/14);
  if (fine.f < best) {
    best = fine.f;
    best_a = fine.x;
  }
  if (exit_min < best) return std::nullopt;
  ThicknessMeasurement m;
  m.estimator = Estimator::kOrthogonalIntercept;
  m.position = p;
  m.end_a = p;
  m.end_b = p + rotate(n, best_a) * best;
  m.width_px = best;
  return m;
}

// Intercepts at points spaced sample_spacing_px along every boundary curve (random
// start from the seed). Counts the truncated points in *truncated.
std::vector<OiSample> sample_intercepts(const detail::Boundary& boundary, const MaskGeometry& g,
                                        const ThicknessOptions& o, int* truncated) {
  std::vector<OiSample> samples;
  std::mt19937_64 gen(o.seed * 0x9E3779B97F4A7C15ULL + 7);
  const double start = (static_cast<double>(gen() >> 11) / 9007199254740992.0) * o.sample_spacing_px;
  double next = start, travelled = 0;
  const auto& curves = boundary.curves();
  for (size_t c = 0; c < curves.size(); ++c) {
    const auto& pts = curves[c].points;
    const size_t nseg = curves[c].closed ? pts.size() : pts.size() - 1;
    int order = 0;
    for (size_t i = 0; i < nseg && pts.size() > 1; ++i) {
      const cv::Point2d a = pts[i], b = pts[(i + 1) % pts.size()];
      const double len = cv::norm(b - a);
      while (next <= travelled + len) {
        const cv::Point2d p = len > 0 ? a + (b - a) * ((next - travelled) / len) : a;
        next += o.sample_spacing_px;
        const std::optional<ThicknessMeasurement> m = intercept_at(boundary, g, o, p);
        if (!m) {
          ++*truncated;
          continue;
        }
        OiSample s;
        s.m = *m;
        s.m.segment = static_cast<int>(c);
        s.curve = static_cast<int>(c);
        s.order = order++;
        samples.push_back(s);
      }
      travelled += len;
    }
  }
  return samples;
}

// ---- Skeleton ----------------------------------------------------------------------

struct SkelClass {
  std::vector<cv::Point> ends, junctions;
  cv::Mat branch_labels;
  int num_branches = 0;
};

// End points, junctions, and the branches between junctions (labelled from 1).
SkelClass classify_skeleton(const cv::Mat& sk) {
  SkelClass sc;
  cv::Mat branches = sk.clone();
  std::vector<cv::Point> pts;
  cv::findNonZero(sk, pts);
  for (const auto& p : pts) {
    const Nbh n = neighbourhood(sk, p.x, p.y);
    if (n.count <= 1 || n.transitions == 1) sc.ends.push_back(p);
    if (n.transitions >= 3) {
      sc.junctions.push_back(p);
      branches.at<uint8_t>(p) = 0;
    }
  }
  sc.num_branches = cv::connectedComponents(branches, sc.branch_labels, 8, CV_32S) - 1;
  return sc;
}

// Spur pruning: end branches shorter than spur_length_factor x their width (at most
// three rounds). Updates skel and sc.
void prune_spurs(cv::Mat& skel, SkelClass& sc, const cv::Mat& edt, const ThicknessOptions& o) {
  const int W = skel.cols, H = skel.rows;
  for (int round = 0; round < 3 && o.spur_length_factor > 0; ++round) {
    std::vector<int> size(sc.num_branches + 1, 0);
    std::vector<double> width(sc.num_branches + 1, 0);
    std::vector<char> has_end(sc.num_branches + 1, 0), touches_junction(sc.num_branches + 1, 0);
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        const int l = sc.branch_labels.at<int>(y, x);
        if (l <= 0) continue;
        ++size[l];
        width[l] = std::max(width[l], 2.0 * edt.at<float>(y, x));
      }
    for (const auto& e : sc.ends) {
      const int l = sc.branch_labels.at<int>(e);
      if (l > 0) has_end[l] = 1;
    }
    for (const auto& j : sc.junctions)
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) {
          const int x = j.x + dx, y = j.y + dy;
          if (x < 0 || y < 0 || x >= W || y >= H) continue;
          const int l = sc.branch_labels.at<int>(y, x);
          if (l > 0) touches_junction[l] = 1;
        }
    bool pruned = false;
    for (int l = 1; l <= sc.num_branches; ++l)
      if (has_end[l] && touches_junction[l] && size[l] < o.spur_length_factor * width[l]) {
        skel.setTo(0, sc.branch_labels == l);
        pruned = true;
      }
    if (!pruned) break;
    skel = skeletonize(skel);  // re-thin the leftovers of removed spurs at junctions
    sc = classify_skeleton(skel);
  }
}

// Skeleton length in px: half of the links to 8-neighbours; diagonal links only when
// no 4-path exists. A single pixel counts 1.
double skeleton_length(const cv::Mat& skel) {
  const int W = skel.cols, H = skel.rows;
  double total = 0;
  std::vector<cv::Point> pts;
  cv::findNonZero(skel, pts);
  auto on = [&](int x, int y) { return x >= 0 && y >= 0 && x < W && y < H && skel.at<uint8_t>(y, x); };
  for (const auto& p : pts) {
    double len = 0;
    for (int dy = -1; dy <= 1; ++dy)
      for (int dx = -1; dx <= 1; ++dx) {
        if (!dx && !dy) continue;
        if (!on(p.x + dx, p.y + dy)) continue;
        if (dx && dy) {
          if (on(p.x + dx, p.y) || on(p.x, p.y + dy)) continue;
          len += std::sqrt(2.0);
        } else {
          len += 1.0;
        }
      }
    total += 0.5 * len;
  }
  if (pts.size() == 1) total = 1;
  return total;
}

// ---- Orthogonal-intercept exclusions and statistics --------------------------------

// Samples near a membrane end (skeleton end point) measure the end cap.
void exclude_intercepts_at_ends(std::vector<OiSample>& samples, const std::vector<cv::Point>& ends,
                                double end_radius) {
  for (auto& smp : samples)
    for (const auto& e : ends)
      if (cv::norm(smp.m.position - cv::Point2d(e.x, e.y)) < end_radius) {
        smp.m.excluded = true;
        smp.m.reason = "end";
        break;
      }
}

// Tangential (too long) and short chords against the local median along the same
// boundary curve (samples [i0, i1) of one curve, `window` samples either side).
void exclude_intercepts_by_local_median(std::vector<OiSample>& samples, size_t i0, size_t i1, bool closed,
                                        int window, const ThicknessOptions& o) {
  const int n = static_cast<int>(i1 - i0);
  for (int k = 0; k < n; ++k) {
    std::vector<double> local;
    for (int j = k - window; j <= k + window; ++j) {
      int jj = j;
      if (closed) jj = ((j % n) + n) % n;
      else if (j < 0 || j >= n) continue;
      local.push_back(samples[i0 + jj].m.width_px);
      if (closed && 2 * window + 1 >= n && j - (k - window) + 1 >= n) break;
    }
    const double med = median_of(local);
    ThicknessMeasurement& m = samples[i0 + k].m;
    if (!m.excluded && m.width_px > o.tangential_factor * med) {
      m.excluded = true;
      m.reason = "tangential";
    } else if (!m.excluded && m.width_px < o.short_factor * med) {
      // A chord across a bump or notch of the outline, not across the membrane.
      m.excluded = true;
      m.reason = "short";
    }
  }
}

// Exclusions, then the orthogonal-intercept statistics into result (measurements
// appended in sample order).
void summarise_intercepts(std::vector<OiSample>& samples, int truncated, const detail::Boundary& boundary,
                          const SkelClass& sc, const ThicknessOptions& o, ThicknessResult& result) {
  std::vector<double> all;
  for (const auto& s : samples) all.push_back(s.m.width_px);
  const double global_median = median_of(all);
  const int window = std::max(o.local_window,
                              static_cast<int>(std::ceil(8.0 * (std::isfinite(global_median) ? global_median : 0) /
                                                         o.sample_spacing_px)));
  exclude_intercepts_at_ends(samples, sc.ends, (std::isfinite(global_median) ? global_median : 0.0) + 2.0);
  size_t i0 = 0;
  while (i0 < samples.size()) {
    size_t i1 = i0;
    while (i1 < samples.size() && samples[i1].curve == samples[i0].curve) ++i1;
    exclude_intercepts_by_local_median(samples, i0, i1, boundary.curves()[samples[i0].curve].closed, window, o);
    i0 = i1;
  }
  std::vector<double> kept;
  int excluded = 0;
  for (const auto& s : samples) {
    if (s.m.excluded) ++excluded;
    else kept.push_back(s.m.width_px);
    result.measurements.push_back(s.m);
  }
  result.oi = width_stats(kept);
  result.oi.n_excluded = excluded;
  result.oi.n_truncated = truncated;
  result.oi_stereological_harmonic_px = result.oi.harmonic_mean * 8.0 / (3.0 * kPi);
  result.oi_stereological_arithmetic_px = result.oi.mean * kPi / 4.0;
}

// ---- Direct (medial-axis) estimator ------------------------------------------------

struct DirectPoint {
  ThicknessMeasurement m;
  cv::Point pixel;
};

// The local normal of branch l at (x, y): PCA of same-branch pixels within 3 px.
cv::Point2d branch_normal(const cv::Mat& branch_labels, int x, int y, int l) {
  const int W = branch_labels.cols, H = branch_labels.rows;
  double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0, cnt = 0;
  for (int dy = -3; dy <= 3; ++dy)
    for (int dx = -3; dx <= 3; ++dx) {
      const int xx = x + dx, yy = y + dy;
      if (xx < 0 || yy < 0 || xx >= W || yy >= H || branch_labels.at<int>(yy, xx) != l) continue;
      sx += dx;
      sy += dy;
      sxx += dx * dx;
      syy += dy * dy;
      sxy += dx * dy;
      cnt += 1;
    }
  cv::Point2d normal(1, 0);
  if (cnt >= 2) {
    const double mx = sx / cnt, my = sy / cnt;
    const double cxx = sxx / cnt - mx * mx, cyy = syy / cnt - my * my, cxy = sxy / cnt - mx * my;
    const double theta = 0.5 * std::atan2(2 * cxy, cxx - cyy);  // tangent angle
    normal = cv::Point2d(-std::sin(theta), std::cos(theta));
  }
  return normal;
}

// Width at every skeleton point of every branch: the largest inscribed circle whose
// centre lies within 1.5 px of the point along the normal. Counts in *truncated the
// circles that reach the image edge.
std::vector<DirectPoint> direct_widths(const detail::Boundary& boundary, const SkelClass& sc, const cv::Mat& edt,
                                       int* truncated) {
  const int W = edt.cols, H = edt.rows;
  std::vector<DirectPoint> direct;
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      const int l = sc.branch_labels.at<int>(y, x);
      if (l <= 0) continue;
      const cv::Point2d normal = branch_normal(sc.branch_labels, x, y, l);
      const cv::Point2d p0(x, y);
      const double reach = edt.at<float>(y, x) + 4.0;
      // Maximise the distance to the boundary: minimise its negative.
      auto neg_dist = [&](double s) { return -boundary.nearest(p0 + normal * s, reach + std::abs(s)); };
      const GoldenMin best = golden_section_min(neg_dist, -1.5, 1.5, /*iterations=*/16);
      const double s_best = best.x, radius = -best.f;
      if (!std::isfinite(radius)) continue;
      // The inscribed circle reaches the image edge: the membrane is cut there.
      const cv::Point2d q = p0 + normal * s_best;
      if (std::min({q.x, q.y, W - 1 - q.x, H - 1 - q.y}) < radius + 1.0) {
        ++*truncated;
        continue;
      }
      DirectPoint dp;
      dp.pixel = cv::Point(x, y);
      dp.m.estimator = Estimator::kDirect;
      dp.m.position = p0 + normal * s_best;
      dp.m.end_a = dp.m.position - normal * radius;
      dp.m.end_b = dp.m.position + normal * radius;
      dp.m.width_px = 2.0 * radius;
      dp.m.segment = l;
      direct.push_back(dp);
    }
  return direct;
}

// Points whose circle reaches a skeleton end or a junction.
void exclude_direct_at_ends_and_junctions(std::vector<DirectPoint>& direct, const SkelClass& sc) {
  for (auto& d : direct) {
    const double w = d.m.width_px;
    for (const auto& e : sc.ends)
      if (cv::norm(d.pixel - e) < 1.0 * w + 1.0) {
        d.m.excluded = true;
        d.m.reason = "end";
        break;
      }
    if (d.m.excluded) continue;
    for (const auto& j : sc.junctions)
      if (cv::norm(d.pixel - j) < 1.5 * w + 1.0) {
        d.m.excluded = true;
        d.m.reason = "junction";
        break;
      }
  }
}

// Wide outliers against the median of the same branch's points within `radius` px.
void exclude_direct_by_local_median(std::vector<DirectPoint>& direct, int num_branches, double radius,
                                    double tangential_factor) {
  std::vector<std::vector<size_t>> by_branch(num_branches + 1);
  for (size_t i = 0; i < direct.size(); ++i) by_branch[direct[i].m.segment].push_back(i);
  std::vector<char> wide(direct.size(), 0);
  for (const auto& ids : by_branch)
    for (size_t i : ids) {
      if (direct[i].m.excluded) continue;
      std::vector<double> local;
      for (size_t j : ids)
        if (!direct[j].m.excluded && cv::norm(direct[j].pixel - direct[i].pixel) <= radius)
          local.push_back(direct[j].m.width_px);
      if (direct[i].m.width_px > tangential_factor * median_of(local)) wide[i] = 1;
    }
  for (size_t i = 0; i < direct.size(); ++i)
    if (wide[i]) {
      direct[i].m.excluded = true;
      direct[i].m.reason = "tangential";
    }
}

// Direct-estimator statistics, per segment and overall, into result (measurements
// appended in raster order).
void summarise_direct(const std::vector<DirectPoint>& direct, int truncated, ThicknessResult& result) {
  std::vector<double> kept;
  int excluded = 0;
  std::map<int, std::vector<double>> per_segment;
  std::map<int, int> per_segment_pixels;
  for (const auto& d : direct) {
    ++per_segment_pixels[d.m.segment];
    if (d.m.excluded) {
      ++excluded;
    } else {
      kept.push_back(d.m.width_px);
      per_segment[d.m.segment].push_back(d.m.width_px);
    }
    result.measurements.push_back(d.m);
  }
  result.direct = width_stats(kept);
  result.direct.n_excluded = excluded;
  result.direct.n_truncated = truncated;
  for (const auto& [id, count] : per_segment_pixels) {
    SegmentWidth sw;
    sw.id = id;
    sw.length_px = count;
    auto it = per_segment.find(id);
    if (it != per_segment.end()) {
      const WidthStats ws = width_stats(it->second);
      sw.n = ws.n;
      sw.mean_px = ws.mean;
      sw.median_px = ws.median;
    } else {
      sw.mean_px = sw.median_px = std::numeric_limits<double>::quiet_NaN();
    }
    result.segments.push_back(sw);
  }
}

// ---- The two estimators -----------------------------------------------------------

// Orthogonal intercepts: sampled along the boundary, excluded at membrane ends and
// against the local median; fills result.oi and appends the measurements.
void estimate_orthogonal_intercepts(const detail::Boundary& boundary, const MaskGeometry& g, const SkelClass& sc,
                                    const ThicknessOptions& o, ThicknessResult& result) {
  int truncated = 0;
  std::vector<OiSample> samples = sample_intercepts(boundary, g, o, &truncated);
  summarise_intercepts(samples, truncated, boundary, sc, o, result);
}

// Direct (medial-axis) widths: excluded at ends, junctions, then wide outliers against
// the local median; fills result.direct and result.segments, appends the measurements.
void estimate_direct(const detail::Boundary& boundary, const SkelClass& sc, const cv::Mat& edt,
                     const ThicknessOptions& o, ThicknessResult& result) {
  int truncated = 0;
  std::vector<DirectPoint> direct = direct_widths(boundary, sc, edt, &truncated);
  std::vector<double> widths_all;
  for (const auto& d : direct) widths_all.push_back(d.m.width_px);
  const double global_median = median_of(widths_all);
  exclude_direct_at_ends_and_junctions(direct, sc);
  exclude_direct_by_local_median(direct, sc.num_branches,
                                 std::max(static_cast<double>(o.local_window),
                                          8.0 * (std::isfinite(global_median) ? global_median : 0.0)),
                                 o.tangential_factor);
  summarise_direct(direct, truncated, result);
}

}  // namespace

ThicknessResult measure_thickness(const cv::Mat& mask_in, const ThicknessOptions& o) {
  check_thickness_inputs(mask_in, o);
  MaskGeometry g;
  g.mask = mask_in != 0;
  g.W = g.mask.cols;
  g.H = g.mask.rows;
  ThicknessResult result;
  result.nm_per_pixel = o.nm_per_pixel;
  result.mask_area_px = cv::countNonZero(g.mask);
  NEPHRO_CHECK(result.mask_area_px > 0, "thickness: the mask is empty (no foreground pixel)");
  NEPHRO_CHECK(result.mask_area_px < static_cast<double>(g.W) * g.H,
               "thickness: the mask has no background pixel (it covers the whole ", g.W, "x", g.H,
               " image, so no membrane edge can be measured)");

  cv::Mat field;
  g.mask.convertTo(field, CV_32F, 1.0 / 255.0);
  if (o.smoothing_sigma_px > 0)
    cv::GaussianBlur(field, field, cv::Size(0, 0), o.smoothing_sigma_px, o.smoothing_sigma_px, cv::BORDER_REPLICATE);
  const detail::Boundary boundary(field, 0.5, 4.0);
  g.max_chord = o.max_chord_px > 0 ? o.max_chord_px : 0.5 * std::hypot(g.W, g.H);

  cv::Mat skel = skeletonize(g.mask);
  cv::Mat edt;
  cv::distanceTransform(g.mask, edt, cv::DIST_L2, cv::DIST_MASK_PRECISE);
  SkelClass sc = classify_skeleton(skel);
  prune_spurs(skel, sc, edt, o);
  result.skeleton_length_px = skeleton_length(skel);

  estimate_orthogonal_intercepts(boundary, g, sc, o, result);
  estimate_direct(boundary, sc, edt, o, result);
  return result;
}

}  // namespace nephroseg::measure
