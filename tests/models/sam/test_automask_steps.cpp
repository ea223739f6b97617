// SAM's automatic mask generator, step by step (point grids, crop boxes, NMS, small
// regions, crop-edge filter) and its options: defaults, names, validation messages.
// The end-to-end parity is test_automask.cpp.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "models/sam/amg.h"
#include "nephroseg/sam/automask.h"
#include "support/golden.h"

namespace nephroseg::sam {
namespace {

using nephroseg::test::error_of;

TEST(AutomaskSteps, PointGridFollowsNumpyLinspace) {
  const auto g = amg::point_grid(4);
  ASSERT_EQ(g.size(), 16u);
  EXPECT_DOUBLE_EQ(g[0][0], 0.125);
  EXPECT_DOUBLE_EQ(g[1][0], 0.375);  // x runs fastest
  EXPECT_DOUBLE_EQ(g[1][1], 0.125);
  EXPECT_DOUBLE_EQ(g[15][0], 0.875);
  EXPECT_DOUBLE_EQ(amg::point_grid(1)[0][0], 0.5);
  const auto layers = amg::layer_point_grids(8, 2, 2);
  ASSERT_EQ(layers.size(), 3u);
  EXPECT_EQ(layers[1].size(), 16u);
  EXPECT_EQ(layers[2].size(), 4u);
}

TEST(AutomaskSteps, CropBoxesOfOneLayer) {
  // 90 x 120, overlap int(512/1500 * 90) = 30, crop 75 x 60, x0 outer.
  const auto boxes = amg::crop_boxes(90, 120, 1, 512.0 / 1500.0);
  ASSERT_EQ(boxes.size(), 5u);
  EXPECT_EQ(boxes[0].xyxy, (std::array<int64_t, 4>{0, 0, 120, 90}));
  EXPECT_EQ(boxes[1].xyxy, (std::array<int64_t, 4>{0, 0, 75, 60}));
  EXPECT_EQ(boxes[2].xyxy, (std::array<int64_t, 4>{0, 30, 75, 90}));
  EXPECT_EQ(boxes[3].xyxy, (std::array<int64_t, 4>{45, 0, 120, 60}));
  EXPECT_EQ(boxes[4].layer, 1);
}

TEST(AutomaskSteps, NmsKeepsTiesInInputOrderAndDropsAboveThreshold) {
  const std::vector<std::array<float, 4>> boxes = {
      {0, 0, 10, 10}, {0, 0, 10, 10}, {20, 20, 30, 30}, {0, 0, 10, 9}};
  // Equal scores: the first of the two identical boxes wins; box 3 (IoU 0.9) stays.
  EXPECT_EQ(amg::box_nms(boxes, {1, 1, 1, 2}, 0.95), (std::vector<int64_t>{3, 0, 2}));
  EXPECT_EQ(amg::box_nms(boxes, {1, 1, 1, 2}, 0.5), (std::vector<int64_t>{3, 2}));
  // IoU exactly 1 is not "> 1"; ties keep the input order.
  EXPECT_EQ(amg::box_nms(boxes, {1, 1, 1, 1}, 1.0), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(amg::box_nms(boxes, {0, 1, 0, 1}, 1.0), (std::vector<int64_t>{1, 3, 0, 2}));
}

TEST(AutomaskSteps, SmallRegionsHolesAndIslands) {
  at::Tensor m = at::zeros({10, 10}, at::kBool);
  m.slice(0, 1, 8).slice(1, 1, 8).fill_(true);  // 7x7 block
  m[4][4] = false;                               // 1-px hole
  m[9][9] = true;                                // 1-px island
  EXPECT_TRUE(amg::remove_small_regions(m, 2, amg::RegionMode::kHoles));
  EXPECT_TRUE(m[4][4].item<bool>());
  EXPECT_TRUE(amg::remove_small_regions(m, 2, amg::RegionMode::kIslands));
  EXPECT_FALSE(m[9][9].item<bool>());
  EXPECT_EQ(m.sum().item<int64_t>(), 49);
  EXPECT_FALSE(amg::remove_small_regions(m, 2, amg::RegionMode::kIslands));
  // Every island small: the largest stays.
  EXPECT_TRUE(amg::remove_small_regions(m, 100, amg::RegionMode::kIslands));
  EXPECT_EQ(m.sum().item<int64_t>(), 49);
}

TEST(AutomaskSteps, CropEdgeFilter) {
  const std::array<int64_t, 4> image = {0, 0, 200, 200}, crop = {0, 0, 120, 120};
  EXPECT_TRUE(amg::box_near_crop_edge({10, 10, 115, 60}, crop, image, true));   // inner edge
  EXPECT_FALSE(amg::box_near_crop_edge({0, 0, 60, 60}, crop, image, true));     // image edge
  EXPECT_FALSE(amg::box_near_crop_edge({0, 0, 199, 199}, image, image, true));  // spans image
  EXPECT_TRUE(amg::box_near_crop_edge({0, 0, 199, 199}, image, image, false));  // ... dropped
  EXPECT_FALSE(amg::box_near_crop_edge({0, 0, 150, 199}, image, image, false));
}

TEST(AutomaskOptionsTest, DefaultsAreSamapisAndValid) {
  const AutomaskOptions o;
  EXPECT_NO_THROW(o.validate());
  EXPECT_EQ(o.points_per_side, 32);
  EXPECT_EQ(o.output_type, AutomaskOutput::kSingleMask);
  EXPECT_FALSE(o.include_image_edge);
  const AutomaskOptions sa = AutomaskOptions::segment_anything();
  EXPECT_EQ(sa.output_type, AutomaskOutput::kMultiMaskBestQuality);
  EXPECT_TRUE(sa.include_image_edge);
  EXPECT_EQ(automask_output_names().parse("Single Mask"), AutomaskOutput::kSingleMask);
  EXPECT_EQ(automask_output_names().name(AutomaskOutput::kMultiMaskAll), "Multi-mask (all)");
  EXPECT_NE(error_of([] { automask_output_names().parse("Multi-mask", "output_type"); })
                .find("output_type"),
            std::string::npos);
}

TEST(AutomaskOptionsTest, BadValuesNameTheField) {
  const auto expect_field = [](const char* field, void (*set)(AutomaskOptions&)) {
    AutomaskOptions o;
    set(o);
    const std::string msg = error_of([&] { o.validate(); });
    EXPECT_NE(msg.find(field), std::string::npos) << field << ": '" << msg << "'";
  };
  expect_field("points_per_side", [](AutomaskOptions& o) { o.points_per_side = 0; });
  expect_field("points_per_batch", [](AutomaskOptions& o) { o.points_per_batch = 0; });
  expect_field("pred_iou_thresh", [](AutomaskOptions& o) { o.pred_iou_thresh = NAN; });
  expect_field("stability_score_thresh",
               [](AutomaskOptions& o) { o.stability_score_thresh = INFINITY; });
  expect_field("stability_score_offset",
               [](AutomaskOptions& o) { o.stability_score_offset = -1; });
  expect_field("box_nms_thresh", [](AutomaskOptions& o) { o.box_nms_thresh = 1.5; });
  expect_field("crop_n_layers", [](AutomaskOptions& o) { o.crop_n_layers = -1; });
  expect_field("crop_nms_thresh", [](AutomaskOptions& o) { o.crop_nms_thresh = -0.1; });
  expect_field("crop_overlap_ratio", [](AutomaskOptions& o) { o.crop_overlap_ratio = 1.0; });
  expect_field("crop_n_points_downscale_factor",
               [](AutomaskOptions& o) { o.crop_n_points_downscale_factor = 0; });
  expect_field("min_mask_region_area", [](AutomaskOptions& o) { o.min_mask_region_area = -5; });
  expect_field("crop_n_layers", [](AutomaskOptions& o) {
    o.points_per_side = 4, o.crop_n_layers = 3, o.crop_n_points_downscale_factor = 2;
  });
}

}  // namespace
}  // namespace nephroseg::sam
