// Parity of the GlomSAM losses (values and gradients) and check_accuracy metrics with
// golden/glomsam/losses_metrics.ref.pt (computed by the reference code).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "nephroseg/train/losses.h"
#include "nephroseg/train/metrics.h"
#include "support/golden.h"

namespace nephroseg::train {
namespace {

using test::load_ref_pt;
using test::shared_path;

const char* kPairs[] = {"p1_rect_handmade", "p2_border_nonsquare", "p3_empty_gt",
                        "p4_empty_gt_empty_pred", "p5_all_foreground", "p6_batch3",
                        "p7_batch2_one_empty"};

class LossParity : public ::testing::Test {
 protected:
  void SetUp() override {
    NEPHRO_REQUIRE_SHARED("golden/glomsam/losses_metrics.ref.pt");
    ref_ = load_ref_pt(shared_path("golden/glomsam/losses_metrics.ref.pt"));
  }
  // Runs `loss` on a fresh leaf copy of the pair's logits and compares value and grad.
  template <typename F>
  void check(const std::string& pair, const std::string& name, F loss) {
    at::Tensor z = ref_.at(pair + ".logits").clone().set_requires_grad(true);
    at::Tensor g = ref_.at(pair + ".mask").to(at::kLong);
    at::Tensor value = loss(z, g);
    value.backward();
    const at::Tensor& want = ref_.at(pair + "." + name);
    EXPECT_NEAR(value.item<double>(), want.item<double>(), 1e-6) << pair << "." << name;
    const at::Tensor& want_grad = ref_.at(pair + "." + name + ".grad");
    const double scale = std::max(want_grad.abs().max().item<double>(), 1e-30);
    EXPECT_TRUE(test::tensors_close(z.grad(), want_grad, 1e-6 * scale, 0.0, pair + "." + name + ".grad"));
  }
  std::map<std::string, at::Tensor> ref_;
};

TEST_F(LossParity, Bce) {
  for (const char* p : kPairs) check(p, "bce", [](auto& z, auto& g) { return bce_with_logits_loss(z, g); });
}

TEST_F(LossParity, DiceMonai) {
  for (const char* p : kPairs) check(p, "dice_monai", [](auto& z, auto& g) { return dice_loss(z, g); });
}

TEST_F(LossParity, BoundaryDouGlomSamBroadcast) {
  for (const char* p : kPairs) {
    check(p, "bdou_glomsam", [](auto& z, auto& g) {
      return boundary_dou_loss(z, g, BoundaryConvention::kGlomSamBroadcast);
    });
  }
}

TEST_F(LossParity, BoundaryDouPerImageEqualsOfficial) {
  for (const char* p : kPairs) {
    check(p, "bdou_official_binary", [](auto& z, auto& g) {
      return boundary_dou_loss(z, g, BoundaryConvention::kPerImage);
    });
  }
}

TEST_F(LossParity, TotalGlomSam) {
  GlomSamLossOptions o;
  o.boundary = BoundaryConvention::kGlomSamBroadcast;
  for (const char* p : kPairs) {
    check(p, "total_glomsam", [&](auto& z, auto& g) { return glomsam_loss(z, g, o).total; });
  }
}

TEST(BoundaryTerms, HandMadeSquareAndBatchBug) {
  // 10x10 square in the middle of 32x32: S = 100, C = 36, alpha = 1 - 0.72 = 0.28.
  at::Tensor g = at::zeros({1, 1, 32, 32}, at::kLong);
  g.narrow(2, 11, 10).narrow(3, 11, 10).fill_(1);
  BoundaryDouTerms t = boundary_dou_terms(g);
  EXPECT_EQ(t.boundary, 36);
  EXPECT_EQ(t.foreground, 100);
  EXPECT_NEAR(t.alpha, 0.28, 1e-6);
  // Touching the border: the border row/column counts as boundary.
  at::Tensor b = at::zeros({1, 1, 8, 8}, at::kLong);
  b.narrow(2, 0, 3).narrow(3, 0, 3).fill_(1);
  EXPECT_EQ(boundary_dou_terms(b).boundary, 8);  // all but the pixel at (1,1)
  // Empty GT: alpha = -1, loss exactly 1 with zero gradient.
  at::Tensor z = at::randn({1, 1, 8, 8}).set_requires_grad(true);
  at::Tensor loss = boundary_dou_loss(z, at::zeros({1, 1, 8, 8}, at::kLong));
  loss.backward();
  EXPECT_EQ(loss.item<float>(), 1.0f);
  EXPECT_EQ(z.grad().abs().max().item<float>(), 0.0f);
  // p = g gives ~0.
  at::Tensor perfect = (g.to(at::kFloat) * 2 - 1) * 40;
  EXPECT_LT(boundary_dou_loss(perfect, g).item<float>(), 1e-4);
}

TEST_F(LossParity, BoundaryTermsMatchJsonCounts) {
  // p6_batch3: C = 155 with the broadcast bug, 76 without (README).
  at::Tensor g = ref_.at("p6_batch3.mask").to(at::kLong);
  EXPECT_EQ(boundary_dou_terms(g, BoundaryConvention::kGlomSamBroadcast).boundary, 155);
  EXPECT_EQ(boundary_dou_terms(g, BoundaryConvention::kPerImage).boundary, 76);
}

TEST_F(LossParity, MetricsPerPairExact) {
  for (const char* p : kPairs) {
    const std::string pair = p;
    MetricAccumulator acc;
    acc.add_batch(ref_.at(pair + ".logits"), ref_.at(pair + ".mask").to(at::kLong));
    SegmentationMetrics m = acc.result();
    EXPECT_EQ(m.accuracy_percent, ref_.at(pair + ".metrics.accuracy_percent").item<double>()) << pair;
    EXPECT_EQ(m.iou, ref_.at(pair + ".metrics.iou").item<double>()) << pair;
    EXPECT_EQ(m.dice, ref_.at(pair + ".metrics.dice").item<double>()) << pair;
    EXPECT_EQ(m.recall, ref_.at(pair + ".metrics.recall").item<double>()) << pair;
  }
}

TEST_F(LossParity, MetricsMultiBatchExact) {
  MetricAccumulator acc;
  for (const char* p : {"p1_rect_handmade", "p2_border_nonsquare", "p3_empty_gt", "p5_all_foreground"}) {
    const std::string pair = p;
    acc.add_batch(ref_.at(pair + ".logits"), ref_.at(pair + ".mask").to(at::kLong));
  }
  SegmentationMetrics m = acc.result();
  EXPECT_EQ(m.num_batches, 4);
  EXPECT_EQ(m.accuracy_percent, ref_.at("multi_batch.metrics.accuracy_percent").item<double>());
  EXPECT_EQ(m.iou, ref_.at("multi_batch.metrics.iou").item<double>());
  EXPECT_EQ(m.dice, ref_.at("multi_batch.metrics.dice").item<double>());
  EXPECT_EQ(m.recall, ref_.at("multi_batch.metrics.recall").item<double>());
}

TEST(Metrics, EmptyMasksGiveZeroScoresAndFullAccuracy) {
  MetricAccumulator acc;
  acc.add_batch(at::full({1, 1, 4, 4}, -3.0f), at::zeros({1, 1, 4, 4}, at::kLong));
  SegmentationMetrics m = acc.result();
  EXPECT_EQ(m.iou, 0.0);
  EXPECT_EQ(m.dice, 0.0);
  EXPECT_EQ(m.recall, 0.0);
  EXPECT_EQ(m.accuracy_percent, 100.0);
}

TEST(Metrics, ThresholdIsStrictOnTheLogit) {
  at::Tensor z = at::tensor({0.5f, 0.5000001f, 0.49f, 0.51f}).view({1, 1, 2, 2});
  SegmentationCounts c = count_segmentation(z, at::ones({1, 1, 2, 2}, at::kLong));
  EXPECT_EQ(c.pred_fg, 2);
}

}  // namespace
}  // namespace nephroseg::train
