// nephroseg/sam/automask.h: SAM's automatic mask generator (segment-anything's
// SamAutomaticMaskGenerator): a grid of single-point prompts over the image (and over
// crops of it), each answered by the decoder in batches, filtered by predicted IoU and
// stability, de-duplicated by box NMS, small regions and holes cleaned.
//
//   auto model = nephroseg::sam::SamModel::load("sam_vit_b_01ec64.pth",
//                                               nephroseg::sam::SamConfig::vit_b());
//   auto options = nephroseg::sam::AutomaskOptions::segment_anything();
//   options.points_per_side = 16;
//   auto masks = nephroseg::sam::generate_masks(*model, rgb, options);
//   for (const auto& m : masks) use(m.segmentation, m.predicted_iou);
//
// Thread-safety: generate_masks is a free function over a const SamModel; calls on one
// model from several threads are safe.
//
// Parity: the masks, scores and boxes equal segment-anything's (dca509f) on the tiny
// golden SAM, and those of ksugar's fork for every output_type (exact on the nine
// cases of tests/golden/automask; its README gives the tolerance).
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <functional>
#include <vector>

#include "nephroseg/core/enum_names.h"
#include "nephroseg/sam/sam.h"

namespace nephroseg::sam {

/// Which masks each point prompt contributes and how duplicates within a crop are
/// ranked (samapi's `output_type`, from ksugar's fork of the generator, MobileSAM
/// 41ac534, mobile_sam/automatic_mask_generator.py). Spelt as the fork compares them
/// and as QuPath's extension (SAMOutput.java) sends them:
///   "Single mask"               one mask per point; NMS prefers the smaller mask
///   "Multi-mask (all)"          three masks per point; no NMS within a crop
///   "Multi-mask (largest)"      three masks per point; NMS prefers the larger mask
///   "Multi-mask (smallest)"     three masks per point; NMS prefers the smaller mask
///   "Multi-mask (best quality)" three masks per point; NMS prefers the higher
///                               predicted IoU: segment-anything's own generator
/// samapi's request default is spelt "Single Mask", which the fork itself rejects
/// (NotImplementedError); we accept it as an alias of "Single mask". The bare
/// "Multi-mask" of the fork's docstring is rejected by the fork and by us.
enum class AutomaskOutput {
  kSingleMask,
  kMultiMaskAll,
  kMultiMaskLargest,
  kMultiMaskSmallest,
  kMultiMaskBestQuality,
};

/// The one name table of AutomaskOutput, spelt as QuPath/the fork spell them.
const EnumNames<AutomaskOutput>& automask_output_names();

/// Bounds of AutomaskOptions (validate()): 256^2 = 65,536 prompts per crop at most.
inline constexpr int kMaxPointsPerSide = 256;
inline constexpr int kMaxPointsPerBatch = 4096;
/// One decoder batch's float32 logits at crop size are kept under this many bytes by
/// running fewer points per batch than points_per_batch asks (results are the same).
inline constexpr int64_t kAutomaskBatchBytes = int64_t{1} << 30;

/// Parameters of the generator, with samapi's defaults (`SAMAutoMaskBody`); those equal
/// segment-anything's except output_type and include_image_edge, and
/// AutomaskOptions::segment_anything() gives segment-anything's generator exactly. The
/// CLI (`nephroseg sam --auto`), Python (`Sam.generate_masks`) and the server
/// (`POST /sam/automask/`) bind these fields and nothing else.
struct AutomaskOptions {
  int points_per_side = 32;             // grid of points_per_side^2 prompts per crop
  int points_per_batch = 64;            // prompts per decoder pass (memory, not results)
  double pred_iou_thresh = 0.88;        // keep masks whose predicted IoU exceeds this
  double stability_score_thresh = 0.95; // keep masks whose stability exceeds this
  double stability_score_offset = 1.0;  // logit offset of the stability score
  double box_nms_thresh = 0.7;          // box IoU of NMS within a crop
  int crop_n_layers = 0;                // extra crop layers (layer i: 2^i x 2^i crops)
  double crop_nms_thresh = 0.7;         // box IoU of NMS across crops
  double crop_overlap_ratio = 512.0 / 1500.0;  // crop overlap, fraction of the side
  int crop_n_points_downscale_factor = 1;      // layer i: points_per_side / factor^i
  int min_mask_region_area = 0;         // > 0: remove islands and holes smaller (px)
  AutomaskOutput output_type = AutomaskOutput::kSingleMask;
  /// The fork's include_image_edge. true: segment-anything's crop-edge filter only.
  /// false (samapi's default): also drop every mask whose box lies within 20 px of all
  /// four image edges (a mask spanning the whole image).
  bool include_image_edge = false;
  /// Throws nephroseg::Error naming the first field out of range.
  void validate() const;
  /// segment-anything's SamAutomaticMaskGenerator defaults: output_type "Multi-mask
  /// (best quality)" and include_image_edge true, the rest as above.
  static AutomaskOptions segment_anything();
};

/// One generated mask, with segment-anything's record fields.
struct AutoMask {
  at::Tensor segmentation;               // [H, W] bool, original image size
  int64_t area = 0;                      // foreground pixels
  std::array<double, 4> bbox{};          // XYWH, pixels
  double predicted_iou = 0.0;
  std::array<double, 2> point_coords{};  // the prompt (x, y), original pixels
  double stability_score = 0.0;
  std::array<double, 4> crop_box{};      // XYWH of the crop it came from
};

/// Progress callback: (prompt batches done, prompt batches in all).
using AutomaskProgress = std::function<void(int64_t done, int64_t total)>;

/// Runs the generator on one [H, W, 3] uint8 RGB image. `full_image_embedding`, when
/// given, must be model.encode(image) and saves the whole-image encoder pass (the
/// server's embedding cache); crops are always encoded. Masks are in segment-anything's
/// output order. Where a crop keeps no mask (with crop_n_layers > 0) the reference fails
/// (box_area of an empty 1-D tensor); we go on with the other crops.
std::vector<AutoMask> generate_masks(const SamModel& model, const at::Tensor& image_rgb_u8,
                                     const AutomaskOptions& options,
                                     const ImageEmbedding* full_image_embedding = nullptr,
                                     const AutomaskProgress& progress = {});

}  // namespace nephroseg::sam
