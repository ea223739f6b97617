// Golden parity of SAM input packing, the largest-contour post-processing and the
// authors' Dice script (case07).
#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>

#include "gbmseg_golden.h"
#include "nephroseg/gbmseg/dice.h"
#include "nephroseg/gbmseg/postprocess.h"

using namespace nephroseg;
using namespace nephroseg::gbmseg;
using namespace nephroseg::gbmseg::golden;

namespace {
const std::string kCase = "case07_postproc_dice";

std::vector<uint8_t> bytes_of(const cv::Mat& m) {
  cv::Mat c = m.isContinuous() ? m : m.clone();
  return std::vector<uint8_t>(c.data, c.data + c.total() * c.elemSize());
}
}  // namespace

TEST(GbmsegParity, Case07SamInputPacking) {
  NEPHRO_REQUIRE_SHARED("golden/gbmseg/" + kCase + "/case.json");
  const Points points = load_points(kCase, "prepare_points.npy");
  at::Tensor labels_t = load(kCase, "prepare_labels.npy");
  ASSERT_EQ(labels_t.scalar_type(), at::kDouble);
  std::vector<int> labels;
  for (int64_t i = 0; i < labels_t.numel(); ++i) {
    labels.push_back(static_cast<int>(labels_t[i].item<double>()));
  }
  ASSERT_EQ(points.size(), labels.size());
  // The inputs of prepare_input: positives and negatives given separately.
  Points pos, neg;
  for (size_t i = 0; i < points.size(); ++i) (labels[i] == 1 ? pos : neg).push_back(points[i]);
  ASSERT_FALSE(pos.empty());
  ASSERT_FALSE(neg.empty());
  const SamPointPrompts packed = pack_sam_prompts(pos, neg);
  ArrayCounter n;
  n.expect(packed.points, points, kCase + "/prepare_points");
  n.expect(packed.labels, labels, kCase + "/prepare_labels");
  std::cout << "[ parity  ] " << kCase << " packing: " << n.compared << " golden arrays compared\n";
}

TEST(GbmsegParity, Case07LargestContour) {
  NEPHRO_REQUIRE_SHARED("golden/gbmseg/" + kCase + "/maxcontour_in.npy");
  const cv::Mat in = load_mask(kCase, "maxcontour_in.npy");
  const cv::Mat expected = load_mask(kCase, "maxcontour_out.npy");
  const cv::Mat got = keep_largest_contour(in);
  ASSERT_EQ(got.size(), expected.size());
  ASSERT_EQ(got.type(), CV_8UC1);
  EXPECT_EQ(cv::countNonZero(got != expected), 0) << "pixels differing from maxcontour_out";
  EXPECT_EQ(bytes_of(got), bytes_of(expected));
  EXPECT_EQ(cv::countNonZero(keep_largest_contour(cv::Mat::zeros(8, 8, CV_8UC1))), 0);
}

TEST(GbmsegParity, Case07AuthorsDice) {
  NEPHRO_REQUIRE_SHARED("golden/gbmseg/" + kCase + "/case.json");
  std::ifstream in(golden_file(kCase, "case.json"));
  const nlohmann::json meta = nlohmann::json::parse(in);
  std::vector<cv::Mat> gts, preds;
  std::vector<double> expected_per_image;
  for (const char* name : {"a", "b", "c"}) {
    gts.push_back(load_mask(kCase, std::string("dice_") + name + "_gt.npy"));
    preds.push_back(load_mask(kCase, std::string("dice_") + name + "_pred.npy"));
    expected_per_image.push_back(
        meta.at("dice_per_image_textbook").at(std::string(name) + ".png").get<double>());
  }
  const DiceSummary s = evaluate_dice(gts, preds);
  ASSERT_EQ(s.per_image.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(s.per_image[i], expected_per_image[i]) << i;
  EXPECT_DOUBLE_EQ(s.textbook_mean, meta.at("dice_textbook_mean").get<double>());
  EXPECT_DOUBLE_EQ(s.authors_mean, meta.at("dice_authors_mean").get<double>());
  EXPECT_DOUBLE_EQ(s.authors_miou, meta.at("dice_authors_miou_from_mean").get<double>());
}
