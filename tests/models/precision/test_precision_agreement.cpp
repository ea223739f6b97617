// bf16 and int8 inference against fp32 on the tiny golden models: the agreement
// figures of docs/precision.md. Floors (issue 13): bf16 median SAM mask IoU >= 0.98,
// DINOv2 nearest-neighbour agreement >= 0.95. The other bounds were chosen from the
// measured values (printed as [agreement] lines) with a margin.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "models/sam/internal.h"
#include "nephroseg/core/precision.h"
#include "nephroseg/core/threads.h"
#include "nephroseg/dinov2/dinov2.h"
#include "nephroseg/glomsam/glomsam.h"
#include "nephroseg/sam/sam.h"
#include "support/golden.h"

namespace nephroseg {
namespace {

using test::load_ref_pt;
using test::shared_path;

// Skips bf16 unless this CPU has native bf16 (avx512_bf16 / AMX) and int8 unless
// LibTorch has the onednn engine. int8 runs on every x86 CPU: where it has no VNNI it
// is the path `--force-precision` takes (7-bit weights), checked with its own SAM
// bounds below.
#define REQUIRE_PRECISION(p)                                                                \
  do {                                                                                      \
    if ((p) == Precision::kBf16 && !cpu_features().native_bf16())                           \
      GTEST_SKIP() << "this CPU has no native bf16 (avx512_bf16 / amx_bf16): bf16 "         \
                      "agreement is not checked here";                                      \
    if ((p) == Precision::kInt8) {                                                          \
      try {                                                                                 \
        enable_int8_engine();                                                               \
      } catch (const std::exception& e) {                                                   \
        GTEST_SKIP() << e.what();                                                           \
      }                                                                                     \
    }                                                                                       \
  } while (false)

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// IoU of two boolean masks; two empty masks agree (1).
double iou(const at::Tensor& a, const at::Tensor& b) {
  const double inter = (a & b).sum().item<double>();
  const double uni = (a | b).sum().item<double>();
  return uni == 0 ? 1.0 : inter / uni;
}

double dice(const at::Tensor& a, const at::Tensor& b) {
  const double inter = (a & b).sum().item<double>();
  const double total = a.sum().item<double>() + b.sum().item<double>();
  return total == 0 ? 1.0 : 2.0 * inter / total;
}

double rel_l2(const at::Tensor& a, const at::Tensor& ref) {
  return ((a.to(at::kFloat) - ref).norm() / ref.norm()).item<double>();
}

class PrecisionAgreement : public ::testing::TestWithParam<Precision> {
 protected:
  void SetUp() override { configure_threads(2); }
  const char* name() const { return precision_names().name(GetParam()).c_str(); }
};

// --- SAM -----------------------------------------------------------------------------

struct SamBounds {
  double median_iou, min_iou, logit_error;
};

TEST_P(PrecisionAgreement, SamMasksAndLogits) {
  NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.pth");
  const Precision p = GetParam();
  REQUIRE_PRECISION(p);
  const auto ref = load_ref_pt(shared_path("golden/models/sam_tiny.ref.pt"));
  const auto cfg = sam::SamConfig::from_json(shared_path("golden/models/sam_tiny.json"));
  const std::string pth = shared_path("golden/models/sam_tiny.pth");
  const auto m32 = sam::SamModel::load(pth, cfg);
  const auto mp = sam::SamModel::load(pth, cfg, p);
  ASSERT_EQ(mp->precision(), p);
  const at::Tensor image = ref.at("image_rgb_u8");
  const sam::ImageEmbedding e32 = m32->encode(image);
  const sam::ImageEmbedding ep = mp->encode(image);
  ASSERT_EQ(ep.embedding.scalar_type(), at::kFloat);
  const double emb_err = rel_l2(ep.embedding, e32.embedding);
  EXPECT_GT(emb_err, 0.0) << "the " << name() << " encoder gave the fp32 embedding bit for bit";
  {
    // The official models' global blocks take the banded path (its own bf16 kernel in
    // bf16, and in int8 where the CPU has native bf16); the tiny grid does not reach it
    // unless forced.
    const int64_t keep = sam::chunked_attention_min_tokens();
    sam::chunked_attention_min_tokens() = 0;
    const at::Tensor chunked = mp->encode(image).embedding;
    sam::chunked_attention_min_tokens() = keep;
    const double chunk_err = rel_l2(chunked, e32.embedding);
    std::printf("[agreement] sam_tiny %s, banded attention forced: embedding rel-L2 %.3g\n", name(), chunk_err);
    EXPECT_LT(chunk_err, 2 * emb_err + 1e-3);
  }

  std::vector<double> ious, logit_errs;
  for (const std::string set : {"p0_single_point_multimask", "p1_pos_neg_points", "p2_box",
                                "p3_box_and_point", "p4_mask_and_points", "p5_ignored_point_label_minus1"}) {
    sam::SamPrompt prompt;
    prompt.multimask = ref.at(set + ".in.multimask_output").item<bool>();
    if (ref.count(set + ".in.point_coords")) {
      const at::Tensor pc = ref.at(set + ".in.point_coords"), pl = ref.at(set + ".in.point_labels");
      for (int64_t i = 0; i < pc.size(0); ++i) {
        prompt.points.push_back({pc[i][0].item<float>(), pc[i][1].item<float>()});
        prompt.labels.push_back(pl[i].item<int>());
      }
    }
    if (ref.count(set + ".in.box")) {
      const at::Tensor b = ref.at(set + ".in.box");
      prompt.box = std::array<float, 4>{b[0].item<float>(), b[1].item<float>(), b[2].item<float>(),
                                        b[3].item<float>()};
    }
    if (ref.count(set + ".in.mask_input")) prompt.mask_input = ref.at(set + ".in.mask_input");
    const sam::SamResult r32 = m32->predict(e32, prompt);
    const sam::SamResult rp = mp->predict(ep, prompt);
    for (int64_t k = 0; k < r32.masks.size(0); ++k) ious.push_back(iou(rp.masks[k], r32.masks[k]));
    // Low-res logit error relative to the logits' own scale.
    const double scale = r32.low_res_logits.abs().max().item<double>();
    logit_errs.push_back(
        (rp.low_res_logits - r32.low_res_logits).abs().max().item<double>() / scale);
  }
  const double med = median(ious), lo = *std::min_element(ious.begin(), ious.end());
  const double lerr = *std::max_element(logit_errs.begin(), logit_errs.end());
  std::printf("[agreement] sam_tiny %s: embedding rel-L2 %.3g; mask IoU vs fp32 median %.4f min %.4f "
              "(%zu masks); max low-res logit error %.3g of the logit range\n",
              name(), emb_err, med, lo, ious.size(), lerr);
  // Measured (2 threads, Sapphire Rapids): bf16 median 0.998, min 0.993, logit error
  // 0.009; int8 median 0.994, min 0.956, logit error 0.048. int8 with 7-bit weights
  // (no VNNI; AVX2-only EPYC): median 0.986, min 0.898, logit error 0.067; with 8-bit
  // weights there, before int8_weight_bits(), the saturating products gave median
  // 0.964, min 0.840 (and GlomSAM Dice 0.65).
  const SamBounds b = p == Precision::kBf16        ? SamBounds{0.98, 0.97, 0.03}
                      : cpu_features().full_range_int8() ? SamBounds{0.98, 0.90, 0.10}
                                                         : SamBounds{0.98, 0.85, 0.10};
  if (p == Precision::kInt8)
    std::printf("[agreement] sam_tiny int8 ran with %d-bit weights%s\n", int8_weight_bits(),
                cpu_features().native_int8() ? "" : " (no VNNI here: the --force-precision path)");
  EXPECT_GE(med, b.median_iou);
  EXPECT_GE(lo, b.min_iou);
  EXPECT_LE(lerr, b.logit_error);
}

// --- DINOv2 --------------------------------------------------------------------------

// Per-token cosine similarity of two [N, D] token sets.
at::Tensor token_cosine(const at::Tensor& a, const at::Tensor& b) {
  return at::cosine_similarity(a.to(at::kFloat), b, /*dim=*/1);
}

// Index of each query token's nearest reference token (cosine), as GBMSeg's forward
// matching does: [Nq, D], [Nr, D] -> [Nq].
at::Tensor nearest(const at::Tensor& query, const at::Tensor& reference) {
  const at::Tensor q = query.to(at::kFloat), r = reference.to(at::kFloat);
  const at::Tensor qn = q / q.norm(2, 1, true), rn = r / r.norm(2, 1, true);
  return at::mm(qn, rn.t()).argmax(1);
}

TEST_P(PrecisionAgreement, Dinov2TokensAndNearestNeighbours) {
  const Precision p = GetParam();
  for (const std::string model : {"dinov2_tiny", "dinov2_tiny_reg4", "dinov2_tiny_swiglu"}) {
    SCOPED_TRACE(model);
    NEPHRO_REQUIRE_SHARED("golden/models/" + model + ".pth");
    REQUIRE_PRECISION(p);
    const auto ref = load_ref_pt(shared_path("golden/models/" + model + ".ref.pt"));
    const auto cfg = dinov2::Dinov2Config::from_json(shared_path("golden/models/" + model + ".json"));
    const std::string pth = shared_path("golden/models/" + model + ".pth");
    const auto m32 = dinov2::Dinov2Model::load(pth, cfg);
    const auto mp = dinov2::Dinov2Model::load(pth, cfg, p);
    ASSERT_EQ(mp->precision(), p);
    // x2 (10 x 10 patches) plays the target, x0 (7 x 7) the reference image.
    const at::Tensor t32 = m32->forward_features(ref.at("in.x2")).x_norm_patchtokens[0];
    const at::Tensor tp = mp->forward_features(ref.at("in.x2")).x_norm_patchtokens[0];
    const at::Tensor r32 = m32->forward_features(ref.at("in.x0")).x_norm_patchtokens[0];
    const at::Tensor rp = mp->forward_features(ref.at("in.x0")).x_norm_patchtokens[0];
    ASSERT_EQ(tp.scalar_type(), at::kFloat);
    const at::Tensor cos = at::cat({token_cosine(tp, t32), token_cosine(rp, r32)});
    const double cos_min = cos.min().item<double>();
    const double cos_med = cos.median().item<double>();
    EXPECT_LT(cos_min, 1.0 - 1e-7) << "the " << name() << " model gave the fp32 tokens";
    // Forward (target -> reference) and backward (reference -> target) matches.
    const double fwd = nearest(tp, rp).eq(nearest(t32, r32)).to(at::kDouble).mean().item<double>();
    const double bwd = nearest(rp, tp).eq(nearest(r32, t32)).to(at::kDouble).mean().item<double>();
    std::printf("[agreement] %s %s: token cosine vs fp32 median %.6f min %.6f; nearest-neighbour "
                "matches unchanged: forward %.3f backward %.3f\n",
                model.c_str(), name(), cos_med, cos_min, fwd, bwd);
    // Measured: bf16 cosine min 0.99998, matches >= 0.98; int8 cosine min 0.9997,
    // matches >= 0.97. 0.95 is the bf16 floor.
    const double nn_floor = p == Precision::kBf16 ? 0.95 : 0.93;
    EXPECT_GE(cos_min, p == Precision::kBf16 ? 0.9995 : 0.998);
    EXPECT_GE(fwd, nn_floor);
    EXPECT_GE(bwd, nn_floor);
  }
}

// --- GlomSAM -------------------------------------------------------------------------

TEST_P(PrecisionAgreement, GlomSamMaskDice) {
  NEPHRO_REQUIRE_SHARED("golden/glomsam/full_model.pth");
  const Precision p = GetParam();
  REQUIRE_PRECISION(p);
  const auto ref = load_ref_pt(shared_path("golden/glomsam/full_model.ref.pt"));
  const std::string pth = shared_path("golden/glomsam/full_model.pth");
  const auto cfg = glomsam::GlomSamConfig::tiny();
  const auto m32 = glomsam::GlomSamModel::load(pth, cfg);
  const auto mp = glomsam::GlomSamModel::load(pth, cfg, p);
  ASSERT_EQ(mp->precision(), p);
  const at::Tensor l32 = m32->forward(ref.at("in.image"), ref.at("in.box"));
  const at::Tensor lp = mp->forward(ref.at("in.image"), ref.at("in.box"));
  ASSERT_EQ(lp.scalar_type(), at::kFloat);
  const double err = rel_l2(lp, l32);
  EXPECT_GT(err, 0.0) << "the " << name() << " model gave the fp32 logits";
  std::vector<double> dices;
  for (int64_t b = 0; b < l32.size(0); ++b) {
    dices.push_back(dice(lp[b] > cfg.mask_threshold, l32[b] > cfg.mask_threshold));
  }
  const double lo = *std::min_element(dices.begin(), dices.end());
  std::printf("[agreement] glomsam tiny %s: logits rel-L2 %.3g; mask Dice vs fp32 min %.4f (%zu images)\n",
              name(), err, lo, dices.size());
  EXPECT_GE(lo, 0.98);
}

INSTANTIATE_TEST_SUITE_P(Precisions, PrecisionAgreement,
                         ::testing::Values(Precision::kBf16, Precision::kInt8),
                         [](const ::testing::TestParamInfo<Precision>& info) {
                           return precision_names().name(info.param);
                         });

}  // namespace
}  // namespace nephroseg
