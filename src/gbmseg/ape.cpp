// Automatic prompt engineering: the order of the sampling steps (spec §9) and the SAM
// input packing.
#include "nephroseg/gbmseg/prompts.h"

namespace nephroseg::gbmseg {

namespace {

Points sparse_or_identity(const Points& points, double radius, const Points& other,
                          const ApeOptions& o, SparseVariant variant) {
  return o.sparse ? sparse_sample(points, radius, other, variant) : points;
}

void finish(ApeStages& s, const ApeOptions& o) {
  if (o.hard_sample) s.final_neg.insert(s.final_neg.end(), s.hard_sparse.begin(),
                                        s.hard_sparse.end());
  if (s.final_neg.empty()) {
    s.final_neg.push_back(o.neg_fallback);
    s.neg_fallback_used = true;
  }
  if (s.final_pos.empty()) {
    s.final_pos.push_back(o.pos_fallback);
    s.pos_fallback_used = true;
  }
}

}  // namespace

ApeStages automatic_prompt_engineering(const Points& pos, const Points& neg, const Points& hard,
                                       const ApeOptions& o) {
  ApeStages s;
  s.in_pos = pos;
  s.in_neg = neg;
  s.in_hard = hard;
  if (o.order == ApeOrder::kHead) {
    // Ref: automatic_prompt_engineering.py::APE (d327490). Note the positives' SPARSE
    // scores against the negatives BEFORE exclusion, the negatives' against the
    // sampled positives.
    constexpr SparseVariant v = SparseVariant::kHead;
    s.hard_sparse = sparse_or_identity(hard, o.d_sp_hard, pos, o, v);
    s.neg_exclusive = o.exclusive ? exclusive_sample(neg, pos, o.d_ex) : neg;
    s.pos_sparse = sparse_or_identity(pos, o.d_sp_pos, neg, o, v);
    s.neg_sparse = sparse_or_identity(s.neg_exclusive, o.d_sp_neg, s.pos_sparse, o, v);
    s.final_pos = s.pos_sparse;
    s.final_neg = s.neg_sparse;
  } else {
    // Ref: tools/automatic_prompt_engineering.py (06dae0b): sampling first, exclusion of
    // the sampled negatives against the sampled positives last.
    constexpr SparseVariant v = SparseVariant::kSeedClaimed2023;
    s.hard_sparse = sparse_or_identity(hard, o.d_sp_hard, pos, o, v);
    s.pos_sparse = sparse_or_identity(pos, o.d_sp_pos, neg, o, v);
    s.neg_sparse = sparse_or_identity(neg, o.d_sp_neg, pos, o, v);
    s.neg_exclusive = o.exclusive ? exclusive_sample(s.neg_sparse, s.pos_sparse, o.d_ex)
                                  : s.neg_sparse;
    s.final_pos = s.pos_sparse;
    s.final_neg = s.neg_exclusive;
  }
  finish(s, o);
  return s;
}

// Ref: segmenter/segment.py::prepare_input
SamPointPrompts pack_sam_prompts(const Points& positives, const Points& negatives) {
  SamPointPrompts out;
  out.points.reserve(positives.size() + negatives.size());
  out.points.insert(out.points.end(), positives.begin(), positives.end());
  out.points.insert(out.points.end(), negatives.begin(), negatives.end());
  out.labels.assign(positives.size(), 1);
  out.labels.insert(out.labels.end(), negatives.size(), 0);
  return out;
}

}  // namespace nephroseg::gbmseg
