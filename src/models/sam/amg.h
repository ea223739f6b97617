// src/models/sam/amg.h (internal): the steps of SAM's automatic mask generator, one
// function each, so tests can check them alone. The generator itself
// (nephroseg/sam/automask.h) strings them together in src/models/sam/automask.cpp.
// Ref: segment_anything/utils/amg.py, segment_anything/automatic_mask_generator.py
// (dca509f) and ksugar/MobileSAM's fork of both (41ac534).
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <vector>

namespace nephroseg::sam::amg {

/// n x n points in [0, 1]^2, row by row (x fastest), at the centres of an n x n grid;
/// numpy.linspace's arithmetic (start + i * step, last point exactly 1 - 1/(2n)).
/// Ref: amg.py::build_point_grid
std::vector<std::array<double, 2>> point_grid(int n_per_side);

/// One grid per crop layer: layer i has int(n_per_side / factor^i) points a side.
/// Ref: amg.py::build_all_layer_point_grids
std::vector<std::vector<std::array<double, 2>>> layer_point_grids(int n_per_side, int n_layers,
                                                                  int factor);

/// A crop of the image, XYXY in original pixels (x1, y1 exclusive), and its layer.
struct CropBox {
  std::array<int64_t, 4> xyxy{};
  int layer = 0;
};

/// The whole image (layer 0), then for layer i >= 1 the (2^i)^2 overlapping crops,
/// x0 in the outer loop. Ref: amg.py::generate_crop_boxes
std::vector<CropBox> crop_boxes(int64_t height, int64_t width, int n_layers,
                                double overlap_ratio);

/// IoU of the masks at logit thresholds threshold +- offset: [N, H, W] float logits
/// -> [N] float32 (NaN where the low-threshold mask is empty).
/// Ref: amg.py::calculate_stability_score
at::Tensor stability_score(const at::Tensor& logits, double threshold, double offset);

/// XYXY box of a [H, W] bool mask, inclusive right/bottom pixel; (0, 0, 0, 0) when
/// empty. Ref: amg.py::batched_mask_to_box (one mask)
std::array<int64_t, 4> mask_to_box(const at::Tensor& mask);

/// Whether a box (crop frame) lies within 20 px of an inner edge of its crop (one that
/// is not also within 20 px of the image edge). With include_image_edge false
/// (ksugar's fork), also true when all four sides are within 20 px of the image edge.
/// Ref: amg.py::is_box_near_crop_edge (+ the fork's ignore_image_edge)
bool box_near_crop_edge(const std::array<int64_t, 4>& box_in_crop,
                        const std::array<int64_t, 4>& crop, const std::array<int64_t, 4>& image,
                        bool include_image_edge);

/// Greedy NMS as torchvision 0.14's CPU kernel (all boxes one category): visit by
/// descending score (stable: ties in input order), drop every later box whose IoU with
/// a kept box exceeds iou_threshold; float32 box arithmetic, area (x1-x0)*(y1-y0).
/// Returns the kept indices in visiting order. Ref: torchvision.ops.batched_nms
std::vector<int64_t> box_nms(const std::vector<std::array<float, 4>>& boxes,
                             const std::vector<float>& scores, double iou_threshold);

/// Removes connected regions (8-connectivity) smaller than area_threshold pixels:
/// holes (background regions, filled) or islands (foreground regions, erased; if all
/// are small the largest is kept). Returns whether the mask changed.
/// Ref: amg.py::remove_small_regions
enum class RegionMode { kHoles, kIslands };
bool remove_small_regions(at::Tensor& mask_hw_bool, double area_threshold, RegionMode mode);

}  // namespace nephroseg::sam::amg
