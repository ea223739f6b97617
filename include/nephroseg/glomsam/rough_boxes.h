// nephroseg/glomsam/rough_boxes.h: one box per glomerulus from GlomSAM's rough mask
// (the UNet), for running GlomSAM once per glomerulus (`nephroseg serve`, automask/).
//
//   auto model = nephroseg::glomsam::GlomSamModel::load("best.pth", cfg);
//   cv::Mat rough = nephroseg::glomsam::rough_mask(*model, rgb);     // CV_8U 0/1
//   for (const Box& b : nephroseg::glomsam::component_boxes(rough)) {
//     PredictOptions po;  po.box = b;
//     auto r = model->predict(rgb, po);                              // one glomerulus
//   }
//
// rough_mask: the image is tiled as GlomSamModel::predict tiles it (same tile starts,
// zero padding, overlapping tiles averaged); per tile the UNet logits are resized
// bilinearly to img_size x img_size, the very map whose positive pixels give the
// model's automatic box (forward without a box); mask = mean logit > 0.
// component_boxes: the mask's 8-connected components (io::label_instances order: raster
// order of their first pixel); components of fewer than min_area pixels give no box;
// each box is the component's bounding box (x0, y0, last x, last y, as box_from_mask),
// each side moved outward by `margin` pixels (10 = the automatic box's margin) and
// clipped to [0, W] x [0, H].
// Thread-safety: as GlomSamModel::predict (const, no-grad).
#pragma once

#include <cstdint>
#include <vector>

#include "nephroseg/glomsam/glomsam.h"

namespace nephroseg::glomsam {

/// The rough mask of an RGB uint8 image of any size: CV_8U 0/1, the image's size.
/// Throws nephroseg::Error when the model has no rough-mask generator (ablation) or
/// tile_overlap is not in [0, img_size).
cv::Mat rough_mask(const GlomSamModel& model, const cv::Mat& rgb, int64_t tile_overlap = 128);

/// One box per 8-connected component of `mask` (CV_8U, non-zero = inside), see above.
std::vector<Box> component_boxes(const cv::Mat& mask, float margin = 10.f, int min_area = 16);

}  // namespace nephroseg::glomsam
