// Correspondence matching: forward (reference -> target), backward (target -> all
// reference patches), and the two hard-negative candidate lists H1 / H2 (spec §5-§7).
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "nephroseg/core/error.h"
#include "nephroseg/gbmseg/prompts.h"

namespace nephroseg::gbmseg {

namespace {

constexpr int64_t kRowBlock = 256;

at::Tensor as_double_matrix(const at::Tensor& t, const char* what) {
  NEPHRO_CHECK(t.defined(), "match_features: ", what, " features are undefined");
  NEPHRO_CHECK(t.dim() == 2, "match_features: ", what, " features must be [N, D], got ",
               t.sizes());
  NEPHRO_CHECK(at::isFloatingType(t.scalar_type()), "match_features: ", what,
               " features must be floating point, got ", t.scalar_type());
  NEPHRO_CHECK(t.size(0) > 0 && t.size(1) > 0, "match_features: ", what,
               " features are empty: ", t.sizes());
  return t.detach().to(at::kCPU, at::kDouble).contiguous();
}

}  // namespace

FeatureMatches match_features(const at::Tensor& ref_features, const at::Tensor& tgt_features) {
  const at::Tensor ref = as_double_matrix(ref_features, "reference");  // [Nr, D]
  const at::Tensor tgt = as_double_matrix(tgt_features, "target");     // [Nt, D]
  NEPHRO_CHECK(ref.size(1) == tgt.size(1), "match_features: feature dims differ (reference ",
               ref.size(1), ", target ", tgt.size(1), ")");
  const int64_t nr = ref.size(0), nt = tgt.size(0);

  FeatureMatches out;
  out.num_ref = nr;
  out.num_tgt = nt;
  out.ref_nearest_tgt.assign(nr, 0);
  out.ref_farthest_tgt.assign(nr, 0);
  out.tgt_nearest_ref.assign(nt, 0);
  std::vector<double> col_best(nt, std::numeric_limits<double>::infinity());

  const at::Tensor ref_sq = ref.mul(ref).sum(1);          // [Nr]
  const at::Tensor tgt_sq = tgt.mul(tgt).sum(1);          // [Nt]
  const at::Tensor tgt_t = tgt.t();                       // [D, Nt]
  // Squared distances |x|^2 + |y|^2 - 2 x.y in float64, one block of reference rows at a
  // time. Rows are scanned in increasing order with strict comparisons, so exact ties
  // resolve to the lowest index on both axes (torch.min / torch.max rule).
  for (int64_t r0 = 0; r0 < nr; r0 += kRowBlock) {
    const int64_t r1 = std::min(nr, r0 + kRowBlock);
    at::Tensor base = ref_sq.slice(0, r0, r1).unsqueeze(1).add(tgt_sq.unsqueeze(0));  // [B, Nt]
    at::Tensor d2 = base.addmm(ref.slice(0, r0, r1), tgt_t, /*beta=*/1, /*alpha=*/-2)
                        .clamp_min_(0.0)
                        .contiguous();  // [B, Nt]
    const double* data = d2.data_ptr<double>();
    for (int64_t i = r0; i < r1; ++i) {
      const double* row = data + (i - r0) * nt;
      int64_t amin = 0, amax = 0;
      for (int64_t j = 0; j < nt; ++j) {
        const double v = row[j];
        if (v < row[amin]) amin = j;
        if (v > row[amax]) amax = j;
        if (v < col_best[j]) {
          col_best[j] = v;
          out.tgt_nearest_ref[j] = i;
        }
      }
      out.ref_nearest_tgt[i] = amin;
      out.ref_farthest_tgt[i] = amax;
    }
  }
  out.tgt_nearest_ref_distance.resize(nt);
  for (int64_t j = 0; j < nt; ++j) {
    // sqrt in double then one rounding to float equals a float32 sqrt of the same value.
    out.tgt_nearest_ref_distance[j] = static_cast<float>(std::sqrt(col_best[j]));
  }
  return out;
}

// Ref: feature_matching/generate_points.py::forward_matching, backward_matching,
//      negative_points
SetMatching match_set(const FeatureMatches& matches, const PatchIndices& set) {
  std::vector<char> in_set(matches.num_ref, 0);
  for (int64_t k : set) {
    NEPHRO_CHECK(k >= 0 && k < matches.num_ref, "match_set: reference patch index ", k,
                 " outside 0..", matches.num_ref - 1);
    in_set[k] = 1;
  }
  SetMatching out;
  const size_t n = set.size();
  out.forward.reserve(n);
  out.farthest.reserve(n);
  out.back.reserve(n);
  out.back_distance.reserve(n);
  std::vector<float> rejected_distance;
  for (int64_t k : set) {
    const int64_t m = matches.ref_nearest_tgt[k];
    const int64_t f = matches.ref_farthest_tgt[k];
    const int64_t b = matches.tgt_nearest_ref[m];
    out.forward.push_back(m);
    out.farthest.push_back(f);
    out.back.push_back(b);
    out.back_distance.push_back(matches.tgt_nearest_ref_distance[m]);
    if (in_set[b]) {
      out.kept.push_back(m);
    } else {
      out.rejected.push_back(m);
      rejected_distance.push_back(matches.tgt_nearest_ref_distance[m]);
    }
    // H2: the farthest match, kept if its own nearest reference patch is outside the set.
    if (!in_set[matches.tgt_nearest_ref[f]]) out.hard_h2.push_back(f);
  }
  // H1: the authors take a float32 torch.mean of the rejected back-match distances and
  // keep d <= mean. The golden cases keep every value >= 0.08 % away from the mean, so
  // a float64 sum rounded once to float32 is as good as torch's reduction order.
  out.no_rejection = out.rejected.empty();
  if (!out.no_rejection) {
    double sum = 0.0;
    for (float d : rejected_distance) sum += d;
    out.h1_threshold = static_cast<float>(sum / static_cast<double>(rejected_distance.size()));
    for (size_t i = 0; i < out.rejected.size(); ++i) {
      if (rejected_distance[i] <= out.h1_threshold) out.hard_h1.push_back(out.rejected[i]);
    }
  }
  return out;
}

}  // namespace nephroseg::gbmseg
