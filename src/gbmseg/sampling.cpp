// Point sampling of the automatic prompt engineering: SPARSE and EXCLUSIVE (spec §9).
#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <utility>

#include "nephroseg/gbmseg/prompts.h"

namespace nephroseg::gbmseg {

namespace {

// numpy's pairwise summation (umath loops, PW_BLOCKSIZE = 128, 8-way unrolled).
double pairwise_sum(const double* a, size_t n) {
  if (n < 8) {
    double res = 0.0;
    for (size_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    size_t i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    }
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  size_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

using PointKey = std::pair<int32_t, int32_t>;
PointKey key_of(const Point& p) { return {p.x, p.y}; }

// np.mean of the distances from c to every point of `other` (in `other` order).
double mean_distance(const Point& c, const Points& other, std::vector<double>& scratch) {
  scratch.clear();
  for (const Point& o : other) scratch.push_back(point_distance(c, o));
  return numpy_mean(scratch);
}

}  // namespace

double point_distance(const Point& a, const Point& b) {
  // Exact integer squared distance, one correctly rounded sqrt (not hypot).
  const int64_t dx = static_cast<int64_t>(a.x) - b.x;
  const int64_t dy = static_cast<int64_t>(a.y) - b.y;
  return std::sqrt(static_cast<double>(dx * dx + dy * dy));
}

double numpy_mean(const std::vector<double>& values) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  return pairwise_sum(values.data(), values.size()) / static_cast<double>(values.size());
}

// Ref: automatic_prompt_engineering.py::refine_prompt
Points sparse_sample(const Points& points, double radius, const Points& other,
                     SparseVariant variant) {
  std::set<PointKey> claimed;
  Points out;
  Points cand;
  std::vector<double> scratch;
  for (const Point& seed : points) {
    if (claimed.count(key_of(seed))) continue;
    if (variant == SparseVariant::kSeedClaimed2023) claimed.insert(key_of(seed));
    cand.clear();
    for (const Point& q : points) {
      if (q == seed || claimed.count(key_of(q))) continue;
      if (point_distance(q, seed) <= radius) cand.push_back(q);
    }
    for (const Point& q : cand) claimed.insert(key_of(q));
    cand.push_back(seed);  // the seed is always the last candidate
    if (other.empty()) {
      // All numpy means are NaN; the authors' argmax then returns the first candidate.
      out.push_back(cand.front());
      continue;
    }
    size_t best = 0;
    double best_score = mean_distance(cand[0], other, scratch);
    for (size_t i = 1; i < cand.size(); ++i) {
      const double s = mean_distance(cand[i], other, scratch);
      if (s >= best_score) {  // equal scores: the later candidate wins
        best = i;
        best_score = s;
      }
    }
    out.push_back(cand[best]);
  }
  return out;
}

// Ref: automatic_prompt_engineering.py::refine_prompt_converse
Points exclusive_sample(const Points& negatives, const Points& positives, double d_ex) {
  Points out;
  for (const Point& n : negatives) {
    double nearest = std::numeric_limits<double>::infinity();
    for (const Point& p : positives) nearest = std::min(nearest, point_distance(n, p));
    if (nearest >= d_ex) out.push_back(n);
  }
  return out;
}

}  // namespace nephroseg::gbmseg
