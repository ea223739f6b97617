#include "nephroseg/measure/phantom.h"

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>
#include <random>

#include "nephroseg/core/error.h"

namespace nephroseg::measure {

namespace {

constexpr double kPi = 3.14159265358979323846;

// Own distributions on top of mt19937_64 so a seed gives the same phantom with every
// standard library.
class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed * 0x9E3779B97F4A7C15ULL + 0x1234567ULL) {}
  double uniform() { return static_cast<double>(gen_() >> 11) * (1.0 / 9007199254740992.0); }
  double uniform(double a, double b) { return a + (b - a) * uniform(); }
  int integer(int lo, int hi) { return lo + static_cast<int>(uniform() * (hi - lo + 1)) % (hi - lo + 1); }
  double normal() {
    const double u1 = std::max(uniform(), 1e-300), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * kPi * u2);
  }

 private:
  std::mt19937_64 gen_;
};

using Polyline = std::vector<cv::Point2d>;

// Distance from every pixel centre within `reach` of the polyline to the polyline.
void update_distance(cv::Mat& dist, const Polyline& line, double reach) {
  const int W = dist.cols, H = dist.rows;
  for (size_t i = 0; i + 1 < line.size(); ++i) {
    const cv::Point2d a = line[i], b = line[i + 1];
    const cv::Point2d ab = b - a;
    const double len2 = std::max(ab.dot(ab), 1e-12);
    const int x0 = std::max(0, static_cast<int>(std::floor(std::min(a.x, b.x) - reach)));
    const int x1 = std::min(W - 1, static_cast<int>(std::ceil(std::max(a.x, b.x) + reach)));
    const int y0 = std::max(0, static_cast<int>(std::floor(std::min(a.y, b.y) - reach)));
    const int y1 = std::min(H - 1, static_cast<int>(std::ceil(std::max(a.y, b.y) + reach)));
    for (int y = y0; y <= y1; ++y) {
      float* row = dist.ptr<float>(y);
      for (int x = x0; x <= x1; ++x) {
        const cv::Point2d p(x, y);
        const double u = std::clamp((p - a).dot(ab) / len2, 0.0, 1.0);
        const cv::Point2d q = a + u * ab;
        const double d = std::hypot(p.x - q.x, p.y - q.y);
        if (d < row[x]) row[x] = static_cast<float>(d);
      }
    }
  }
}

double length_of(const Polyline& line) {
  double l = 0;
  for (size_t i = 0; i + 1 < line.size(); ++i) l += cv::norm(line[i + 1] - line[i]);
  return l;
}

// The longest run of points inside the image grown by `margin`.
Polyline longest_inside_run(const Polyline& pts, int size, double margin, bool closed) {
  auto inside = [&](const cv::Point2d& p) {
    return p.x >= -margin && p.y >= -margin && p.x <= size - 1 + margin && p.y <= size - 1 + margin;
  };
  const size_t n = pts.size();
  bool all = true;
  for (const auto& p : pts) all = all && inside(p);
  if (all) {
    Polyline out = pts;
    if (closed) out.push_back(pts.front());
    return out;
  }
  Polyline best, cur;
  if (!closed) {
    for (const auto& p : pts) {
      if (inside(p)) {
        cur.push_back(p);
      } else {
        if (cur.size() > best.size()) best = cur;
        cur.clear();
      }
    }
    if (cur.size() > best.size()) best = cur;
    return best;
  }
  // Closed: start right after an outside point so no run wraps around.
  size_t start = 0;
  for (size_t i = 0; i < n; ++i)
    if (!inside(pts[i])) {
      start = i;
      break;
    }
  for (size_t k = 1; k <= n; ++k) {
    const cv::Point2d& p = pts[(start + k) % n];
    if (inside(p)) {
      cur.push_back(p);
    } else {
      if (cur.size() > best.size()) best = cur;
      cur.clear();
    }
  }
  if (cur.size() > best.size()) best = cur;
  return best;
}

cv::Point2d tangent_at(const Polyline& line, size_t i) {
  const size_t a = i > 2 ? i - 3 : 0, b = std::min(line.size() - 1, i + 3);
  cv::Point2d d = line[b] - line[a];
  const double n = cv::norm(d);
  return n > 0 ? d / n : cv::Point2d(1, 0);
}

}  // namespace

PhantomShape parse_phantom_shape(const std::string& name) {
  if (name == "mixed") return PhantomShape::kMixed;
  if (name == "straight") return PhantomShape::kStraight;
  if (name == "arc") return PhantomShape::kArc;
  if (name == "wave") return PhantomShape::kWave;
  if (name == "loop") return PhantomShape::kLoop;
  NEPHRO_FAIL("unknown phantom shape '", name, "' (mixed, straight, arc, wave, loop)");
}

std::string phantom_shape_name(PhantomShape shape) {
  switch (shape) {
    case PhantomShape::kMixed: return "mixed";
    case PhantomShape::kStraight: return "straight";
    case PhantomShape::kArc: return "arc";
    case PhantomShape::kWave: return "wave";
    case PhantomShape::kLoop: return "loop";
  }
  return "mixed";
}

Phantom generate_phantom(const PhantomOptions& o) {
  NEPHRO_CHECK(o.size >= 64, "phantom size must be >= 64 px (got ", o.size, ")");
  NEPHRO_CHECK(o.thickness_px >= 2.0 && o.thickness_px <= o.size / 6.0,
               "phantom thickness must be in [2, size/6] px (got ", o.thickness_px, " for size ", o.size, ")");
  NEPHRO_CHECK(o.nm_per_pixel > 0, "phantom nm_per_pixel must be > 0 (got ", o.nm_per_pixel, ")");
  NEPHRO_CHECK(o.num_membranes >= 1 && o.num_membranes <= 20, "phantom num_membranes must be in [1, 20]");
  Rng rng(o.seed);
  const int N = o.size;
  const double t = o.thickness_px;
  const double rmin = o.min_radius_px > 0 ? std::max(o.min_radius_px, 1.5 * t) : 4.0 * t;
  const double step = 1.0;  // centre-line sampling (sagitta error <= 1/(8 R) px)

  auto make_curve = [&](PhantomShape shape) -> std::pair<Polyline, bool> {
    Polyline pts;
    bool closed = false;
    const double theta = o.orientation_deg >= 0 ? o.orientation_deg * kPi / 180.0 : rng.uniform(0, kPi);
    const cv::Point2d dir(std::cos(theta), std::sin(theta)), nrm(-std::sin(theta), std::cos(theta));
    switch (shape) {
      case PhantomShape::kStraight: {
        const cv::Point2d c(rng.uniform(0.2, 0.8) * N, rng.uniform(0.2, 0.8) * N);
        for (double s = -1.5 * N; s <= 1.5 * N; s += step) pts.push_back(c + s * dir);
        break;
      }
      case PhantomShape::kWave: {
        const cv::Point2d c(rng.uniform(0.25, 0.75) * N, rng.uniform(0.25, 0.75) * N);
        const double lambda = rng.uniform(N / 3.0, N / 1.5);
        const double amax = std::min(lambda * lambda / (4 * kPi * kPi * rmin), N / 8.0);
        const double amp = rng.uniform(0.5, 1.0) * amax, phase = rng.uniform(0, 2 * kPi);
        // Arc-length-ish sampling: small steps in s are fine for the distance field.
        for (double s = -1.5 * N; s <= 1.5 * N; s += step * 0.5)
          pts.push_back(c + s * dir + amp * std::sin(2 * kPi * s / lambda + phase) * nrm);
        break;
      }
      case PhantomShape::kArc: {
        const double R = rng.uniform(rmin, std::max(rmin * 2.5, rmin + 1));
        const cv::Point2d c(rng.uniform(-0.1, 1.1) * N, rng.uniform(-0.1, 1.1) * N);
        const double a0 = rng.uniform(0, 2 * kPi), span = rng.uniform(0.55, 0.8) * 2 * kPi;
        for (double a = 0; a <= span; a += step / R) pts.emplace_back(c.x + R * std::cos(a0 + a), c.y + R * std::sin(a0 + a));
        break;
      }
      case PhantomShape::kLoop:
      case PhantomShape::kMixed: {
        const int k = rng.integer(2, 3);
        const double R0 = rng.uniform(std::max(1.5 * rmin, N / 8.0), std::max(1.5 * rmin, N / 4.0) + 1);
        const double emax = std::min(0.2, std::max(0.0, (R0 / rmin - 1.0) / (k * k - 1.0)));
        const double eps = rng.uniform(0.3, 1.0) * emax, ph = rng.uniform(0, 2 * kPi);
        const cv::Point2d c(rng.uniform(0.3, 0.7) * N, rng.uniform(0.3, 0.7) * N);
        const double dphi = step / (R0 * (1 + eps));
        for (double a = 0; a < 2 * kPi - dphi * 0.5; a += dphi) {
          const double r = R0 * (1 + eps * std::cos(k * a + ph));
          pts.emplace_back(c.x + r * std::cos(a), c.y + r * std::sin(a));
        }
        closed = true;
        break;
      }
    }
    return {longest_inside_run(pts, N, t, closed), closed};
  };

  Phantom ph;
  ph.true_thickness_px = t;
  ph.nm_per_pixel = o.nm_per_pixel;
  // Approximate distance to every accepted centre line (placement only).
  cv::Mat lines(N, N, CV_8U, cv::Scalar(255)), occupied(N, N, CV_32F, cv::Scalar(1e9));
  std::vector<cv::Mat> per_membrane;
  std::vector<int> sides;

  auto accept = [&](const Polyline& line, const std::vector<cv::Point2d>& allowed_contacts) {
    if (line.size() < 2 || length_of(line) < N / 4.0) return false;
    for (const auto& p : line) {
      const int x = cvRound(p.x), y = cvRound(p.y);
      if (x < 0 || y < 0 || x >= N || y >= N) continue;
      if (occupied.at<float>(y, x) < 2.5 * t) {
        bool near_contact = false;
        for (const auto& c : allowed_contacts) near_contact = near_contact || cv::norm(p - c) < 6 * t;
        if (!near_contact) return false;
      }
    }
    cv::Mat d(N, N, CV_32F, cv::Scalar(1e9));
    update_distance(d, line, t / 2 + 2.5);  // exact where the mask and the image need it
    per_membrane.push_back(d);
    sides.push_back(rng.uniform() < 0.5 ? 1 : -1);
    std::vector<cv::Point> ipts;
    for (const auto& q : line) ipts.emplace_back(cvRound(q.x), cvRound(q.y));
    cv::polylines(lines, ipts, false, cv::Scalar(0), 1, cv::LINE_8);
    cv::distanceTransform(lines, occupied, cv::DIST_L2, cv::DIST_MASK_PRECISE);
    ph.centre_lines.push_back(line);
    return true;
  };

  const PhantomShape cycle[] = {PhantomShape::kLoop, PhantomShape::kWave, PhantomShape::kArc, PhantomShape::kStraight};
  for (int m = 0, tries = 0; m < o.num_membranes && tries < 200; ++tries) {
    const PhantomShape shape = o.shape == PhantomShape::kMixed ? cycle[(m + rng.integer(0, 3)) % 4] : o.shape;
    auto [line, closed] = make_curve(shape);
    (void)closed;
    if (accept(line, {})) ++m;
  }
  NEPHRO_CHECK(!ph.centre_lines.empty(), "phantom: could not place any membrane (size ", N,
               ", thickness ", t, "); use a larger size or a thinner membrane");

  if (o.touching) {
    // A circular arc touching an existing band from its convex side: the two bands
    // merge around one point and separate quadratically away from it.
    for (int tries = 0; tries < 100; ++tries) {
      const Polyline& base = ph.centre_lines[rng.integer(0, static_cast<int>(ph.centre_lines.size()) - 1)];
      if (base.size() < 40) continue;
      const size_t i = static_cast<size_t>(rng.uniform(0.25, 0.75) * base.size());
      const cv::Point2d P = base[i], tau = tangent_at(base, i);
      cv::Point2d n(-tau.y, tau.x);
      // convex side: the side the curve bends away from
      const cv::Point2d bend = base[std::min(base.size() - 1, i + 20)] + base[i >= 20 ? i - 20 : 0] - 2.0 * P;
      if (bend.dot(n) > 0) n = -n;
      const double R = rng.uniform(rmin, 1.5 * rmin);
      const cv::Point2d c = P + n * (t + R);
      Polyline arc;
      const double a_mid = std::atan2(-n.y, -n.x), half = rng.uniform(0.45, 0.7) * kPi;
      for (double a = -half; a <= half; a += step / R) arc.emplace_back(c.x + R * std::cos(a_mid + a), c.y + R * std::sin(a_mid + a));
      arc = longest_inside_run(arc, N, t, false);
      if (accept(arc, {P + n * (t / 2)})) {
        ph.contact_points.push_back(P + n * (t / 2));
        break;
      }
    }
  }
  if (o.branching) {
    for (int tries = 0; tries < 100; ++tries) {
      const Polyline& base = ph.centre_lines[rng.integer(0, static_cast<int>(ph.centre_lines.size()) - 1)];
      if (base.size() < 40) continue;
      const size_t i = static_cast<size_t>(rng.uniform(0.25, 0.75) * base.size());
      const cv::Point2d P = base[i], tau = tangent_at(base, i);
      const double ang = (rng.uniform() < 0.5 ? 1 : -1) * rng.uniform(40, 70) * kPi / 180.0;
      const cv::Point2d d(tau.x * std::cos(ang) - tau.y * std::sin(ang), tau.x * std::sin(ang) + tau.y * std::cos(ang));
      const double L = rng.uniform(N / 4.0, N / 2.5);
      Polyline br;
      for (double s = 0; s <= L; s += step) br.push_back(P + s * d);
      br = longest_inside_run(br, N, t, false);
      if (!br.empty() && cv::norm(br.front() - P) < 1.0 && accept(br, {P})) {
        ph.contact_points.push_back(P);
        break;
      }
    }
  }

  // Mask: pixel centres within t/2 of any centre line.
  cv::Mat dmin(N, N, CV_32F, cv::Scalar(1e9));
  for (const auto& d : per_membrane) dmin = cv::min(dmin, d);
  ph.mask = cv::Mat::zeros(N, N, CV_8U);
  ph.mask.setTo(255, dmin <= static_cast<float>(t / 2.0));

  // Image.
  cv::Mat img(N, N, CV_32F, cv::Scalar(178.0));
  if (o.texture) {
    auto noise_field = [&](int cells, double amplitude) {
      cv::Mat g(cells, cells, CV_32F);
      for (int y = 0; y < cells; ++y)
        for (int x = 0; x < cells; ++x) g.at<float>(y, x) = static_cast<float>(rng.normal() * amplitude);
      cv::Mat up;
      cv::resize(g, up, cv::Size(N, N), 0, 0, cv::INTER_CUBIC);
      return up;
    };
    img += noise_field(std::max(3, N / 48), 14.0);
    img += noise_field(std::max(4, N / 10), 7.0);
    // Foot processes on one side of each membrane and a thin endothelium on the other.
    for (size_t m = 0; m < ph.centre_lines.size(); ++m) {
      const Polyline& line = ph.centre_lines[m];
      const double spacing = std::max(4.0, 0.9 * t);
      double acc = 0;
      for (size_t i = 1; i < line.size(); ++i) {
        acc += cv::norm(line[i] - line[i - 1]);
        if (acc < spacing) continue;
        acc = 0;
        const cv::Point2d tau = tangent_at(line, i), n(-tau.y * sides[m], tau.x * sides[m]);
        const double r = rng.uniform(0.25, 0.4) * t;
        const cv::Point2d fp = line[i] + n * (t / 2 + 0.6 * r);
        cv::circle(img, cv::Point(cvRound(fp.x * 16), cvRound(fp.y * 16)), cvRound(r * 16),
                   cv::Scalar(rng.uniform(118, 138)), cv::FILLED, cv::LINE_AA, 4);
        const cv::Point2d en = line[i] - n * (t / 2 + 2.5);
        cv::circle(img, cv::Point(cvRound(en.x * 16), cvRound(en.y * 16)), cvRound(1.6 * 16),
                   cv::Scalar(120), cv::FILLED, cv::LINE_AA, 4);
      }
    }
  }
  for (int y = 0; y < N; ++y) {
    float* row = img.ptr<float>(y);
    const float* dr = dmin.ptr<float>(y);
    for (int x = 0; x < N; ++x) {
      const double d = dr[x];
      const double cover = std::clamp(t / 2 - d + 0.5, 0.0, 1.0);
      if (cover <= 0) continue;
      const double lamina = std::exp(-(d / (0.22 * t)) * (d / (0.22 * t)));
      const double membrane = 112.0 - 42.0 * lamina;
      row[x] = static_cast<float>((1 - cover) * row[x] + cover * membrane);
    }
  }
  if (o.blur_sigma_px > 0) cv::GaussianBlur(img, img, cv::Size(0, 0), o.blur_sigma_px);
  if (o.noise_sigma > 0)
    for (int y = 0; y < N; ++y) {
      float* row = img.ptr<float>(y);
      for (int x = 0; x < N; ++x) row[x] += static_cast<float>(rng.normal() * o.noise_sigma);
    }
  img.convertTo(ph.image, CV_8U);
  return ph;
}

}  // namespace nephroseg::measure
