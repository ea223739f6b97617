// nephroseg/gbmseg/prompts.h: GBMSeg automatic prompt engineering (patch matching and
// point sampling), as computed by the authors' code (github.com/XueyuLiu/GBMSeg).
//
// From a reference image with its GBM mask and a target image (both resized to the
// working size S x S), GBMSeg derives SAM point prompts for the target:
//
//   reference mask --patch_sets--> fg / bg reference patch lists          (spec §4)
//   features --matching--> forward / backward matches, hard candidates    (spec §5-§7)
//   patches --point_order--> de-duplicated centre points                  (spec §8, App. A)
//   points --ape--> exclusive + sparse (+ hard) sampling -> final prompts (spec §9)
//
// Usage (the pipeline computes the reference features once, then loops over targets):
//
//   using namespace nephroseg::gbmseg;
//   PromptOptions opt = PromptOptions::authors_code();          // S = 560, patch 14
//   at::Tensor ref = dinov2(reference_560);                    // [1600, D] float
//   for (const auto& target : targets) {
//     PromptResult r = generate_prompts(ref, dinov2(target), opt.grid(), mask_560, opt);
//     SamPointPrompts sam = pack_sam_prompts(r.ape.final_pos, r.ape.final_neg);
//     ...                                                        // r.warnings, r.* stages
//   }
//
// Every function here is pure (no global state) and thread-safe; failures of the
// authors' code (no fg/bg patch, no rejected match, no positive) never throw: they
// add a warning (also sent to log_warn) and fall back as documented. Only invalid
// arguments (shapes, sizes) throw nephroseg::Error.
//
// Conventions: patch index k = row * G + col (row-major, row = y); a Point is [x, y]
// in pixels of the S x S image; the centre of patch k is (col*p + p/2, row*p + p/2)
// with p the patch size (14).
#pragma once

#include <ATen/core/Tensor.h>
#include <opencv2/core/mat.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace nephroseg::gbmseg {

// ---------------------------------------------------------------------------
// Basic types
// ---------------------------------------------------------------------------

/// A point prompt [x, y] in pixels of the working image (x = column, y = row).
struct Point {
  int32_t x = 0;
  int32_t y = 0;
  friend bool operator==(const Point& a, const Point& b) { return a.x == b.x && a.y == b.y; }
  friend bool operator!=(const Point& a, const Point& b) { return !(a == b); }
};
using Points = std::vector<Point>;
/// Patch indices k = row * G + col, in the order the stage produced them.
using PatchIndices = std::vector<int64_t>;

// ---------------------------------------------------------------------------
// Stage 1: reference mask -> fg / bg patch sets (src/gbmseg/patch_sets.cpp)
// ---------------------------------------------------------------------------

enum class PatchRule {
  /// Authors: fg = every pixel (every channel) of the block non-zero, bg = every pixel zero.
  kAllNonZero,
  /// Deviation: fg = every pixel >= threshold, bg = every pixel < threshold.
  kThreshold,
};

struct PatchSetOptions {
  int patch_size = 14;
  PatchRule rule = PatchRule::kAllNonZero;
  int threshold = 128;  // only for PatchRule::kThreshold
  /// Authors: the last patch row and column (index G-1) are never examined (their
  /// loop stops at S - 14 exclusive). false = deviation that examines them too.
  bool skip_last_row_col = true;
};

struct PatchSets {
  int grid = 0;         // G
  PatchIndices fg;      // raster order
  PatchIndices bg;      // raster order
};

/// Classifies the reference patches of a mask of S x S pixels (CV_8U, 1 to 4 channels;
/// every channel is tested). S must be a multiple of patch_size; G = S / patch_size.
// Ref: feature_matching/generate_points.py (reference-mask loop of generate())
PatchSets reference_patch_sets(const cv::Mat& mask, const PatchSetOptions& options = {});

/// Centre [x, y] of patch k on a G x G grid of patch_size-pixel patches.
Point patch_centre(int64_t k, int grid, int patch_size = 14);
Points patch_centres(const PatchIndices& patches, int grid, int patch_size = 14);

// ---------------------------------------------------------------------------
// Stage 2: correspondence matching (src/gbmseg/matching.cpp)
// ---------------------------------------------------------------------------

/// Nearest / farthest neighbours between the reference and target patch features.
/// Squared Euclidean distances are computed in float64 (|x|^2 + |y|^2 - 2 x.y with a
/// float64 GEMM, clamped at 0); ties resolve to the LOWEST index (torch's rule). For
/// features that are multiples of 1/64 (the golden vectors) every value is exact.
struct FeatureMatches {
  int64_t num_ref = 0, num_tgt = 0;
  PatchIndices ref_nearest_tgt;   // [N_ref] argmin_j d(ref_i, tgt_j)
  PatchIndices ref_farthest_tgt;  // [N_ref] argmax_j d(ref_i, tgt_j)
  PatchIndices tgt_nearest_ref;   // [N_tgt] argmin_k d(tgt_j, ref_k)   (backward)
  std::vector<float> tgt_nearest_ref_distance;  // [N_tgt] that distance (float32, not squared)
};

/// ref_features [N_ref, D], tgt_features [N_tgt, D], any floating dtype, CPU or not.
/// Works in row blocks (memory O(block * N_tgt)).
FeatureMatches match_features(const at::Tensor& ref_features, const at::Tensor& tgt_features);

/// Forward + backward matching of one reference patch set (fg or bg).
struct SetMatching {
  PatchIndices forward;       // [K] nearest target patch of each set patch (set order)
  PatchIndices farthest;      // [K] farthest target patch of each set patch
  PatchIndices back;          // [K] nearest reference patch (over ALL N) of each forward match
  std::vector<float> back_distance;  // [K] its distance (float32)
  PatchIndices kept;          // forward[i] with back[i] in the set (order, duplicates kept)
  PatchIndices rejected;      // forward[i] with back[i] not in the set
  /// H1: rejected forward[i] with back_distance[i] <= float32 mean over the rejected
  /// ones (inclusive), list order, duplicates kept. Empty (plus no_rejection = true)
  /// where the authors' code crashes (nothing rejected).
  PatchIndices hard_h1;
  float h1_threshold = 0.0f;  // the float32 mean (0 when nothing was rejected)
  bool no_rejection = false;
  /// H2: farthest[i] whose own nearest reference patch is not in the set (list order,
  /// duplicates kept). This is what the authors' generate() returns as "hard".
  PatchIndices hard_h2;
};

/// `set` is a list of reference patch indices (e.g. PatchSets::fg) into `matches`.
// Ref: feature_matching/generate_points.py::forward_matching / backward_matching /
//      negative_points
SetMatching match_set(const FeatureMatches& matches, const PatchIndices& set);

// ---------------------------------------------------------------------------
// Stage 3: de-duplication and order of the point lists (src/gbmseg/point_order.cpp)
// ---------------------------------------------------------------------------

enum class PointOrder {
  /// De-duplicate and sort by (y, x): the project default.
  kRaster,
  /// Emulate `list(set(tuple(p) for p in points))` of 64-bit CPython 3.8-3.13
  /// (spec Appendix A): bit-exact with the authors' order-dependent sampling.
  kCPythonSet,
};

/// Removes duplicate points and orders the rest as `order` says.
Points deduplicate_points(const Points& points, PointOrder order);

/// CPython's hash of the tuple (x, y) of integral numbers (int or integral float),
/// as an unsigned 64-bit value.
uint64_t cpython_point_hash(int64_t x, int64_t y);

// ---------------------------------------------------------------------------
// Stage 4: point sampling (src/gbmseg/sampling.cpp)
// ---------------------------------------------------------------------------

/// Euclidean distance between two points: sqrt of the exact integer squared distance.
double point_distance(const Point& a, const Point& b);

/// numpy's np.mean of a float64 list (pairwise summation as numpy does it, then / n).
/// NaN for an empty list.
double numpy_mean(const std::vector<double>& values);

enum class SparseVariant {
  /// HEAD code: the seed itself is not marked claimed (duplicates of it survive).
  kHead,
  /// Dec-2023 code: the seed is marked claimed too (later duplicates are dropped).
  kSeedClaimed2023,
};

/// SPARSE (spec §9): greedy clustering in list order; each unclaimed seed claims the
/// unclaimed points (!= seed) within `radius` (inclusive); of [members..., seed] the
/// one with the largest numpy-mean distance to `other` is kept (equal scores: the later
/// candidate wins; empty `other`: the first candidate).
// Ref: automatic_prompt_engineering.py::refine_prompt
Points sparse_sample(const Points& points, double radius, const Points& other,
                     SparseVariant variant = SparseVariant::kHead);

/// EXCLUSIVE (spec §9): keeps the negatives whose minimum distance to the positives is
/// >= d_ex (inclusive). With no positives every negative is kept (the authors crash).
// Ref: automatic_prompt_engineering.py::refine_prompt_converse
Points exclusive_sample(const Points& negatives, const Points& positives, double d_ex);

// ---------------------------------------------------------------------------
// Stage 5: automatic prompt engineering (src/gbmseg/ape.cpp)
// ---------------------------------------------------------------------------

enum class ApeOrder {
  /// Current code (d327490 / HEAD): hard' = SPARSE(hard, D_sp_hard, pos);
  /// neg_ex = EXCLUSIVE(neg, pos, D_ex); pos' = SPARSE(pos, D_sp_pos, neg);
  /// neg' = SPARSE(neg_ex, D_sp_neg, pos'); if hard_sample: neg' += hard'.
  kHead,
  /// Dec-2023 tools/automatic_prompt_engineering.py: hard' = SPARSE(hard, D_sp_hard,
  /// pos); pos' = SPARSE(pos, D_sp_pos, neg); neg_sp = SPARSE(neg, D_sp_neg, pos);
  /// neg' = EXCLUSIVE(neg_sp, pos', D_ex); if hard_sample: neg' += hard'. SPARSE uses
  /// SparseVariant::kSeedClaimed2023.
  k2023,
};

/// Radii in pixels of the working image (see PromptOptions for the fractions of S).
struct ApeOptions {
  double d_sp_pos = 70.0;
  double d_sp_neg = 70.0;
  double d_ex = 70.0;
  double d_sp_hard = 1.0;
  bool exclusive = true;     // false: neg_exclusive = neg (ablation)
  bool sparse = true;        // false: every SPARSE step is the identity (ablation)
  bool hard_sample = false;  // append the sampled hard list to the negatives
  ApeOrder order = ApeOrder::kHead;
  Point pos_fallback{250, 250};  // used when no positive survives (authors: fixed pixels)
  Point neg_fallback{10, 10};    // used when no negative survives
};

/// Every intermediate list of one APE run (names as in the golden files).
struct ApeStages {
  Points in_pos, in_neg, in_hard;  // inputs, in order
  Points hard_sparse;              // SPARSE(hard, d_sp_hard, other = in_pos)
  Points neg_exclusive;            // HEAD: EXCLUSIVE(in_neg); 2023: EXCLUSIVE(neg_sparse)
  Points pos_sparse;               // SPARSE(in_pos, d_sp_pos, other = in_neg)
  Points neg_sparse;               // HEAD: SPARSE(neg_exclusive); 2023: SPARSE(in_neg)
  Points final_pos, final_neg;     // SAM prompts (label 1 / label 0), with fallbacks
  bool pos_fallback_used = false;
  bool neg_fallback_used = false;
};

// Ref: automatic_prompt_engineering.py::APE (HEAD) and
//      tools/automatic_prompt_engineering.py (06dae0b, ApeOrder::k2023)
ApeStages automatic_prompt_engineering(const Points& pos, const Points& neg, const Points& hard,
                                       const ApeOptions& options);

// ---------------------------------------------------------------------------
// Top level: options and generate_prompts (src/gbmseg/prompts.cpp)
// ---------------------------------------------------------------------------

/// A length given as a fraction of the working size S plus an absolute pixel part.
struct Radius {
  double fraction = 0.0;  // of S
  double pixels = 0.0;
  double to_pixels(int size) const { return fraction * size + pixels; }
  static Radius of_size(double f) { return Radius{f, 0.0}; }
  static Radius absolute(double px) { return Radius{0.0, px}; }
};

enum class HardMode {
  kOff,  // no hard list (APE's hard input is empty)
  kH1,   // rejected fg forward matches that match back well (paper-like reading)
  kH2,   // farthest fg matches whose nearest reference patch is not fg (authors' "hard")
};

/// Rows of the paper's ablation Table 1, cumulative from top to bottom. On top of
/// paper() (radii, HEAD APE order, raster order), PromptOptions::ablation sets:
///   row          backward  exclusive  sparse  hard_mode  hard_sample
///   kForwardOnly  false     false      false   kOff       false
///   kBackward     true      false      false   kOff       false
///   kExclusive    true      true       false   kOff       false
///   kSparse       true      true       true    kOff       false
///   kHard         true      true       true    kH1        true      (= paper())
/// The fallback points apply in every row.
enum class AblationRow {
  kForwardOnly,  // positives/negatives = de-duplicated forward matches; no filter, no sampling
  kBackward,     // + backward filter (kept matches only)
  kExclusive,    // + EXCLUSIVE on the negatives (D_ex)
  kSparse,       // + SPARSE on positives and negatives (D_sp_pos / D_sp_neg)
  kHard,         // + hard sampling (H1, SPARSE with D_sp_hard, appended) = paper()
};

struct PromptOptions {
  int size = 560;        // working image side S (images resized to S x S)
  int patch_size = 14;   // ViT patch; grid G = S / patch_size
  PatchRule patch_rule = PatchRule::kAllNonZero;
  int patch_threshold = 128;      // for PatchRule::kThreshold
  bool skip_last_row_col = true;  // authors' loop bound
  bool backward = true;           // false: use forward matches unfiltered (ablation)
  bool exclusive = true;          // ablation switch of APE's EXCLUSIVE step
  bool sparse = true;             // ablation switch of APE's SPARSE steps
  HardMode hard_mode = HardMode::kH2;  // which list APE receives as "hard"
  bool hard_sample = false;       // whether APE appends the sampled hard list
  /// Commit 0947e7c: H2 centres are also merged into the negatives before
  /// de-duplication (neg = set(H2 centres + kept bg centres), H2 first: that insertion
  /// order reproduces the authors' CPython set order).
  bool merge_h2_into_negatives = false;
  PointOrder order = PointOrder::kRaster;
  ApeOrder ape_order = ApeOrder::kHead;
  Radius d_sp_pos = Radius::of_size(0.125);
  Radius d_sp_neg = Radius::of_size(0.125);
  Radius d_ex = Radius::of_size(0.125);
  Radius d_sp_hard = Radius::absolute(1.0);
  /// Deviation: scale the fallback points (250,250)/(10,10) by S/512 (rounded).
  bool scale_fallbacks = false;

  int grid() const { return size / patch_size; }
  PatchSetOptions patch_set_options() const;
  ApeOptions ape_options() const;

  /// What the public code (HEAD d327490) does: S = 560, D_sp_pos = D_sp_neg = D_ex =
  /// 0.125 S, D_sp_hard = 1 px; hard negatives off (the H2 list is computed and run
  /// through SPARSE as the authors do, but never appended: hard_sample = false). The
  /// authors' point order is CPython's set order; pass PointOrder::kCPythonSet for a
  /// bit-exact reproduction (the project default is raster order).
  static PromptOptions authors_code(PointOrder order = PointOrder::kRaster);
  /// Commit 0947e7c: as authors_code() but H2 merged into the negatives and appended
  /// after sampling (hard_sample = true).
  static PromptOptions authors_c0947(PointOrder order = PointOrder::kRaster);
  /// Dec-2023 APE order (ApeOrder::k2023) with its radii D_sp_pos = 0,
  /// D_sp_neg = D_sp_hard = 0.125 S, D_ex = 0.25 S, H2 appended.
  static PromptOptions authors_2023(PointOrder order = PointOrder::kRaster);
  /// Paper-style reading: D_ex = 0.25 S, D_sp_pos = 0, D_sp_neg = D_sp_hard = 0.125 S,
  /// hard sampling on with the H1 list, HEAD APE order, raster order.
  static PromptOptions paper();
  /// paper() with the components below `row` of Table 1 switched off.
  static PromptOptions ablation(AblationRow row);
};

/// Everything generate_prompts computed, stage by stage (names follow the golden files).
struct PromptResult {
  int size = 0, grid = 0, patch_size = 14;
  PatchSets patch_sets;           // ref_fg_idx / ref_bg_idx
  SetMatching fg, bg;             // forward / backward / H1 / H2 per set
  Points fwd_fg_pts, fwd_bg_pts;  // centres of fg.forward / bg.forward (duplicates kept)
  Points bwd_pos_pts, bwd_neg_pts;  // centres of fg.kept / bg.kept (duplicates kept)
  Points hard_h1_pts, hard_h2_pts;  // centres of fg.hard_h1 / fg.hard_h2
  Points pos_initial, neg_initial;  // de-duplicated, in PromptOptions::order
  Points hard_initial;              // the hard list given to APE (HardMode)
  ApeStages ape;                    // ape.final_pos / ape.final_neg go to SAM
  std::vector<std::string> warnings;  // where the authors' code would have crashed
};

/// The full GBMSeg prompt generation for one (reference, target) pair.
///   ref_features, tgt_features: [G*G, D] patch features (row k = patch k), any float dtype
///   grid: G (must equal options.grid())
///   ref_mask: S x S CV_8U mask (1-4 channels) exactly as it enters patch classification
/// Never throws for the authors' crash cases (see PromptResult::warnings).
// Ref: feature_matching/generate_points.py::generate + main.py
PromptResult generate_prompts(const at::Tensor& ref_features, const at::Tensor& tgt_features,
                              int grid, const cv::Mat& ref_mask, const PromptOptions& options);

/// Variant that reuses reference patch sets and feature matches computed by the caller.
PromptResult generate_prompts_from_matches(const PatchSets& patch_sets,
                                           const FeatureMatches& matches,
                                           const PromptOptions& options);

// ---------------------------------------------------------------------------
// SAM input packing
// ---------------------------------------------------------------------------

/// SAM point prompts: all positives (label 1) then all negatives (label 0), in order,
/// coordinates in pixels of the working image.
struct SamPointPrompts {
  Points points;
  std::vector<int> labels;
};
// Ref: segmenter/segment.py::prepare_input
SamPointPrompts pack_sam_prompts(const Points& positives, const Points& negatives);

}  // namespace nephroseg::gbmseg
