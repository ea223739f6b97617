// Unit tests of the GBMSeg prompt stages: CPython set order, numpy mean, matching ties,
// patch rules, presets and the no-crash behaviour. Expected constants were produced by
// CPython 3.11 / numpy 1.24 (hash(), list(set(...)), np.mean), never by this code.
#include <ATen/ATen.h>

#include <cmath>
#include <random>

#include "gbmseg_golden.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"

using namespace nephroseg;
using namespace nephroseg::gbmseg;
using namespace nephroseg::gbmseg::golden;

TEST(GbmsegPointOrder, TupleHashMatchesCPython) {
  // hash((1, 2)), hash((7.0, 7.0)), hash((506, -6)), hash((-1, 0)), hash((553.0, 217.0)),
  // hash((2**61, 3)), hash((-7, 2)), hash((0, -1)) on 64-bit CPython 3.11.
  const std::vector<std::tuple<int64_t, int64_t, int64_t>> cases = {
      {1, 2, -3550055125485641917LL},      {7, 7, 6913107858676922533LL},
      {506, -6, -1314054207027507480LL},   {-1, 0, 2575514064802888272LL},
      {553, 217, -7584158182870024160LL},  {int64_t{1} << 61, 3, -1440771752368011620LL},
      {-7, 2, 118768521141512092LL},       {0, -1, 8374038142897728572LL}};
  for (const auto& [x, y, h] : cases) {
    EXPECT_EQ(cpython_point_hash(x, y), static_cast<uint64_t>(h)) << "(" << x << ", " << y << ")";
  }
}

TEST(GbmsegPointOrder, SetOrderMatchesCPython) {
  // random.seed(3); 60 lattice points with repeats (several table resizes).
  const Points in = {
      {217, 525}, {483, 119}, {329, 539}, {427, 525}, {63, 539},  {7, 427},   {231, 497},
      {203, 175}, {427, 483}, {497, 427}, {357, 133}, {203, 133}, {469, 343}, {7, 63},
      {147, 525}, {35, 273},  {21, 245},  {427, 539}, {343, 385}, {357, 511}, {399, 119},
      {329, 91},  {35, 119},  {441, 189}, {231, 385}, {273, 371}, {455, 343}, {511, 315},
      {483, 525}, {371, 525}, {203, 301}, {21, 245},  {539, 147}, {287, 483}, {511, 511},
      {91, 189},  {511, 245}, {259, 105}, {63, 427},  {427, 77},  {315, 63},  {371, 133},
      {21, 259},  {385, 371}, {105, 35},  {539, 553}, {35, 343},  {525, 301}, {497, 245},
      {455, 217}, {35, 273},  {7, 63},    {91, 539},  {483, 35},  {175, 371}, {259, 553},
      {231, 133}, {35, 301},  {287, 329}, {119, 343}};
  const Points expected = {
      {21, 245},  {273, 371}, {287, 483}, {497, 427}, {357, 511}, {231, 133}, {511, 511},
      {371, 525}, {217, 525}, {35, 301},  {469, 343}, {385, 371}, {203, 175}, {119, 343},
      {483, 525}, {511, 245}, {483, 119}, {511, 315}, {63, 427},  {455, 217}, {427, 483},
      {399, 119}, {35, 273},  {427, 77},  {441, 189}, {91, 189},  {21, 259},  {35, 343},
      {287, 329}, {329, 91},  {231, 385}, {427, 525}, {105, 35},  {329, 539}, {63, 539},
      {525, 301}, {7, 427},   {455, 343}, {259, 105}, {371, 133}, {91, 539},  {175, 371},
      {497, 245}, {539, 553}, {231, 497}, {539, 147}, {147, 525}, {259, 553}, {343, 385},
      {35, 119},  {483, 35},  {203, 301}, {315, 63},  {203, 133}, {7, 63},    {427, 539},
      {357, 133}};
  EXPECT_TRUE(same_list(deduplicate_points(in, PointOrder::kCPythonSet), expected, "set order"));
  // list(set([(-1,-1), (-2,5), (0,0), (7,7), (7,7)])) minus the 2**61 entry of the check.
  const Points small = deduplicate_points({{-1, -1}, {-2, 5}, {0, 0}, {7, 7}, {7, 7}},
                                          PointOrder::kCPythonSet);
  EXPECT_EQ(small.size(), 4u);

  const Points raster = deduplicate_points(in, PointOrder::kRaster);
  EXPECT_EQ(raster.size(), expected.size());
  for (size_t i = 1; i < raster.size(); ++i) {
    EXPECT_TRUE(raster[i - 1].y < raster[i].y ||
                (raster[i - 1].y == raster[i].y && raster[i - 1].x < raster[i].x));
  }
  EXPECT_TRUE(deduplicate_points({}, PointOrder::kCPythonSet).empty());
}

TEST(GbmsegSampling, NumpyMeanUsesPairwiseSummation) {
  // np.mean([sqrt(float((i*7919) % 1009) + 0.25) for i in range(n)]) (numpy 1.24).
  const std::vector<std::pair<int, double>> cases = {
      {37, 0x1.563dfe05ee6d4p+4}, {200, 0x1.537f66136e688p+4},
      {1000, 0x1.52ef82c09a12fp+4}, {4099, 0x1.52b7e6e021e04p+4}};
  for (const auto& [n, expected] : cases) {
    std::vector<double> v;
    for (int i = 0; i < n; ++i) v.push_back(std::sqrt(static_cast<double>((i * 7919) % 1009) + 0.25));
    EXPECT_EQ(numpy_mean(v), expected) << "n = " << n;  // bit-exact
  }
  EXPECT_TRUE(std::isnan(numpy_mean({})));
  EXPECT_EQ(point_distance({0, 0}, {3, 4}), 5.0);
  EXPECT_EQ(point_distance({7, 7}, {77, 7}), 70.0);
}

TEST(GbmsegSampling, SparseVariantsDifferOnlyOnDuplicates) {
  const Points in = {{7, 7}, {21, 7}, {7, 7}};
  const Points other = {{300, 300}};
  EXPECT_EQ(sparse_sample(in, 1.0, other).size(), 3u);  // HEAD: duplicates survive
  EXPECT_EQ(sparse_sample(in, 1.0, other, SparseVariant::kSeedClaimed2023).size(), 2u);
  // Radius 0: identity on distinct points.
  const Points distinct = {{7, 7}, {21, 7}, {35, 7}};
  EXPECT_TRUE(same_list(sparse_sample(distinct, 0.0, other), distinct, "radius 0"));
  // EXCLUSIVE without positives keeps everything (the authors crash).
  EXPECT_TRUE(same_list(exclusive_sample(distinct, {}, 70.0), distinct, "no positives"));
}

TEST(GbmsegMatching, TiesGoToTheLowestIndex) {
  // Reference row 0 is equidistant from target rows 1 and 2 (and from 0 and 3 for max).
  at::Tensor ref = at::tensor({0.0f, 0.0f, 5.0f, 5.0f}).view({2, 2});
  at::Tensor tgt = at::tensor({3.0f, 0.0f, 0.0f, 1.0f, 1.0f, 0.0f, 0.0f, 3.0f}).view({4, 2});
  const FeatureMatches m = match_features(ref, tgt);
  EXPECT_EQ(m.ref_nearest_tgt[0], 1);
  EXPECT_EQ(m.ref_farthest_tgt[0], 0);
  // Target (1,0) and (0,1) are nearest to reference 0 at distance 1.
  EXPECT_EQ(m.tgt_nearest_ref[1], 0);
  EXPECT_FLOAT_EQ(m.tgt_nearest_ref_distance[1], 1.0f);
  EXPECT_THROW(match_features(ref, at::zeros({3, 5})), Error);
}

TEST(GbmsegPatchSets, RuleVariantsOnTheRealMask) {
  NEPHRO_REQUIRE_SHARED("golden/gbmseg/case01_realmask_g40_d16/mask.npy");
  const cv::Mat mask = load_mask("case01_realmask_g40_d16", "mask.npy");
  // Counts from specs/gbmseg.md §4.
  PatchSets authors = reference_patch_sets(mask);
  EXPECT_EQ(authors.grid, 40);
  EXPECT_EQ(authors.fg.size(), 167u);
  EXPECT_EQ(authors.bg.size(), 1130u);
  PatchSetOptions t;
  t.rule = PatchRule::kThreshold;
  t.threshold = 128;
  PatchSets thr = reference_patch_sets(mask, t);
  EXPECT_EQ(thr.fg.size(), 156u);
  EXPECT_EQ(thr.bg.size(), 1133u);
  PatchSetOptions all;
  all.skip_last_row_col = false;
  PatchSets full = reference_patch_sets(mask, all);
  EXPECT_EQ(full.fg.size(), 172u);
  EXPECT_EQ(full.bg.size(), 1190u);
  // A 3-channel copy classifies identically (every channel tested).
  cv::Mat rgb;
  cv::merge(std::vector<cv::Mat>{mask, mask, mask}, rgb);
  EXPECT_EQ(reference_patch_sets(rgb).fg, authors.fg);
}

TEST(GbmsegPatchSets, RejectsBadMasks) {
  EXPECT_THROW(reference_patch_sets(cv::Mat::zeros(28, 42, CV_8UC1)), Error);
  EXPECT_THROW(reference_patch_sets(cv::Mat::zeros(30, 30, CV_8UC1)), Error);
  EXPECT_THROW(reference_patch_sets(cv::Mat::zeros(28, 28, CV_32FC1)), Error);
  EXPECT_EQ(patch_centre(41, 40).x, 21);
  EXPECT_EQ(patch_centre(41, 40).y, 21);
}

TEST(GbmsegOptions, PresetsAndAblationRows) {
  const PromptOptions a = PromptOptions::authors_code();
  const ApeOptions ao = a.ape_options();
  EXPECT_EQ(a.size, 560);
  EXPECT_EQ(a.grid(), 40);
  EXPECT_DOUBLE_EQ(ao.d_sp_pos, 70.0);
  EXPECT_DOUBLE_EQ(ao.d_sp_neg, 70.0);
  EXPECT_DOUBLE_EQ(ao.d_ex, 70.0);
  EXPECT_DOUBLE_EQ(ao.d_sp_hard, 1.0);
  EXPECT_FALSE(ao.hard_sample);
  EXPECT_EQ(ao.neg_fallback, (Point{10, 10}));
  EXPECT_EQ(ao.pos_fallback, (Point{250, 250}));
  PromptOptions scaled = a;
  scaled.scale_fallbacks = true;
  EXPECT_EQ(scaled.ape_options().pos_fallback, (Point{273, 273}));
  EXPECT_EQ(scaled.ape_options().neg_fallback, (Point{11, 11}));

  const PromptOptions p = PromptOptions::paper();
  const ApeOptions po = p.ape_options();
  EXPECT_DOUBLE_EQ(po.d_ex, 140.0);
  EXPECT_DOUBLE_EQ(po.d_sp_pos, 0.0);
  EXPECT_DOUBLE_EQ(po.d_sp_neg, 70.0);
  EXPECT_EQ(p.hard_mode, HardMode::kH1);
  EXPECT_TRUE(po.hard_sample);

  const auto row = [](AblationRow r) { return PromptOptions::ablation(r); };
  EXPECT_FALSE(row(AblationRow::kForwardOnly).backward);
  EXPECT_FALSE(row(AblationRow::kForwardOnly).exclusive);
  EXPECT_FALSE(row(AblationRow::kForwardOnly).sparse);
  EXPECT_EQ(row(AblationRow::kForwardOnly).hard_mode, HardMode::kOff);
  EXPECT_TRUE(row(AblationRow::kBackward).backward);
  EXPECT_FALSE(row(AblationRow::kBackward).exclusive);
  EXPECT_TRUE(row(AblationRow::kExclusive).exclusive);
  EXPECT_FALSE(row(AblationRow::kExclusive).sparse);
  EXPECT_TRUE(row(AblationRow::kSparse).sparse);
  EXPECT_FALSE(row(AblationRow::kSparse).hard_sample);
  EXPECT_TRUE(row(AblationRow::kHard).hard_sample);
  EXPECT_EQ(row(AblationRow::kHard).hard_mode, HardMode::kH1);
}

namespace {
// Random features on a small grid with a square mask in the middle.
struct Toy {
  int size = 140, grid = 10;
  at::Tensor ref, tgt;
  cv::Mat mask;
};
Toy make_toy(uint64_t seed) {
  Toy t;
  at::manual_seed(static_cast<int64_t>(seed));
  t.ref = at::randn({100, 8});
  t.tgt = t.ref.index_select(0, at::randperm(100)) + 1.5 * at::randn({100, 8});
  t.mask = cv::Mat::zeros(140, 140, CV_8UC1);
  t.mask(cv::Rect(28, 28, 56, 56)).setTo(255);
  return t;
}
}  // namespace

TEST(GbmsegGenerate, AblationRowsRunAndForwardOnlySkipsTheFilter) {
  const Toy t = make_toy(1);
  for (int r = 0; r <= static_cast<int>(AblationRow::kHard); ++r) {
    PromptOptions o = PromptOptions::ablation(static_cast<AblationRow>(r));
    o.size = t.size;
    const PromptResult res = generate_prompts(t.ref, t.tgt, t.grid, t.mask, o);
    EXPECT_FALSE(res.ape.final_pos.empty());
    EXPECT_FALSE(res.ape.final_neg.empty());
    if (r == 0) {
      EXPECT_EQ(res.pos_initial, deduplicate_points(res.fwd_fg_pts, PointOrder::kRaster));
      EXPECT_EQ(res.ape.final_pos, res.pos_initial);
      EXPECT_EQ(res.ape.final_neg.size(), res.neg_initial.size());
    }
  }
}

TEST(GbmsegGenerate, EmptyMaskWarnsAndFallsBack) {
  Toy t = make_toy(2);
  t.mask.setTo(0);
  std::vector<std::string> logged;
  set_log_sink([&](LogLevel level, const std::string& m) {
    if (level == LogLevel::kWarn) logged.push_back(m);
  });
  PromptOptions o = PromptOptions::authors_code();
  o.size = t.size;
  PromptResult r;
  EXPECT_NO_THROW(r = generate_prompts(t.ref, t.tgt, t.grid, t.mask, o));
  set_log_sink({});
  EXPECT_TRUE(r.patch_sets.fg.empty());
  EXPECT_GE(r.warnings.size(), 2u);  // no fg patch, no positive, positive fallback
  EXPECT_EQ(logged.size(), r.warnings.size());
  ASSERT_EQ(r.ape.final_pos.size(), 1u);
  EXPECT_EQ(r.ape.final_pos[0], (Point{250, 250}));
  EXPECT_TRUE(r.ape.pos_fallback_used);
}

TEST(GbmsegGenerate, RejectsInconsistentInputs) {
  const Toy t = make_toy(3);
  PromptOptions o = PromptOptions::authors_code();
  o.size = t.size;
  EXPECT_THROW(generate_prompts(t.ref, t.tgt, 11, t.mask, o), Error);
  EXPECT_THROW(generate_prompts(t.ref.slice(0, 0, 99), t.tgt, 10, t.mask, o), Error);
  EXPECT_THROW(generate_prompts(t.ref, t.tgt, 10, cv::Mat::zeros(70, 70, CV_8UC1), o), Error);
}

TEST(GbmsegMatching, DinoSizedFeaturesFindThePermutation) {
  // ViT-g sized input (1600 patches x 1536 dims): a permuted, slightly noisy copy of the
  // reference must match every patch back to its origin (gives the cost in the log).
  at::manual_seed(7);
  const at::Tensor ref = at::randn({1600, 1536});
  const at::Tensor perm = at::randperm(1600);
  const at::Tensor tgt = ref.index_select(0, perm) + 0.01 * at::randn({1600, 1536});
  const FeatureMatches m = match_features(ref, tgt);
  const auto* p = perm.data_ptr<int64_t>();
  for (int64_t j = 0; j < 1600; ++j) {
    ASSERT_EQ(m.tgt_nearest_ref[j], p[j]) << j;
    ASSERT_EQ(m.ref_nearest_tgt[p[j]], j) << j;
  }
}
