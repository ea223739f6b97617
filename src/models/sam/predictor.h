// SamPredictor-equivalent steps (internal): resizing, coordinate transforms, the
// encoder pass and one decoder pass with postprocessing. The public API in
// include/nephroseg/sam/sam.h validates inputs and calls these; parity tests call
// them directly to compare every intermediate.
// Ref: segment_anything/predictor.py, segment_anything/utils/transforms.py
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <vector>

#include "models/sam/mask_decoder.h"
#include "models/sam/sam.h"
#include "nephroseg/sam/sam.h"

namespace nephroseg::sam {

/// (new_h, new_w) with the longest side scaled to long_side (double precision,
/// +0.5 then truncation). Ref: transforms.py::ResizeLongestSide.get_preprocess_shape
std::array<int64_t, 2> preprocess_shape(int64_t h, int64_t w, int64_t long_side);

/// [H, W, 3] uint8 RGB (or [H, W] grey) -> contiguous [H, W, 3] uint8.
at::Tensor as_rgb_u8(const at::Tensor& image);

/// SAM: PIL-bilinear resize of the longest side to img_size -> [h, w, 3] uint8.
/// MedSAM: scikit-image's order-3 anti-aliased resize to img_size x img_size.
at::Tensor resize_for_model(const at::Tensor& image_rgb_u8, const SamConfig& config);

/// Encoder input from the resized image [h, w, 3] uint8: [1, 3, S, S] float32.
at::Tensor model_input(SamImpl& sam, const at::Tensor& resized_u8);

/// Point/box coordinates [..., 2] (x, y) from original pixels to the model frame:
/// SAM scales each axis by new/old in float64 then casts to float32; MedSAM uses
/// x / W * S. With `torch_variant` the SAM scaling runs in float32 like
/// apply_coords_torch (used by predict_torch, i.e. batched boxes).
/// Ref: transforms.py::ResizeLongestSide.apply_coords / apply_coords_torch
at::Tensor apply_coords(const at::Tensor& coords, std::array<int64_t, 2> original_size,
                        std::array<int64_t, 2> input_size, const SamConfig& config,
                        bool torch_variant = false);

/// Everything one decoder pass produces (batch dimension B first).
struct DecodeOutput {
  at::Tensor sparse, dense;    // prompt encoder outputs
  at::Tensor low_res_logits;   // [B, C, 4g, 4g]
  at::Tensor iou;              // [B, C]
  at::Tensor mask_logits;      // [B, C, H, W] (MedSAM: logit of resized probability)
  at::Tensor masks;            // [B, C, H, W] bool
};

/// Prompt encoder + mask decoder + postprocess. coords [B, N, 2] float model frame
/// and labels [B, N] int (or undefined), boxes [B, 4] model frame (or undefined),
/// mask_input [B, 1, 4g, 4g] (or undefined). Ref: predictor.py::predict_torch
DecodeOutput decode(SamImpl& sam, const at::Tensor& embedding, const at::Tensor& coords,
                    const at::Tensor& labels, const at::Tensor& boxes,
                    const at::Tensor& mask_input, bool multimask,
                    std::array<int64_t, 2> input_size, std::array<int64_t, 2> original_size,
                    MaskDecoderDebug* debug = nullptr);

}  // namespace nephroseg::sam
