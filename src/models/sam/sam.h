// The SAM model: image encoder, prompt encoder and mask decoder under the reference
// attribute names, plus the reference pre/post-processing.
// Ref: segment_anything/modeling/sam.py
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <array>

#include "models/sam/image_encoder.h"
#include "models/sam/mask_decoder.h"
#include "models/sam/prompt_encoder.h"
#include "nephroseg/sam/sam.h"

namespace nephroseg::sam {

/// Ref: sam.py::Sam. pixel_mean/pixel_std are not registered (they are
/// non-persistent buffers in Python and never appear in checkpoints).
class SamImpl : public torch::nn::Module {
 public:
  explicit SamImpl(const SamConfig& config);

  /// Normalise and pad: x [B, 3, h, w] (uint8 or float, 0..255) ->
  /// [B, 3, img_size, img_size] float32. Ref: sam.py::Sam.preprocess
  at::Tensor preprocess(const at::Tensor& x) const;

  /// Low-res logits [B, C, 4g, 4g] -> [B, C, H, W]: upsample to img_size, crop to
  /// input_size, resize to original_size (bilinear, align_corners=False).
  /// Ref: sam.py::Sam.postprocess_masks
  at::Tensor postprocess_masks(const at::Tensor& masks, std::array<int64_t, 2> input_size,
                               std::array<int64_t, 2> original_size) const;

  SamConfig config;
  at::Tensor pixel_mean, pixel_std;  // [3, 1, 1]
  ImageEncoderViT image_encoder{nullptr};
  PromptEncoder prompt_encoder{nullptr};
  MaskDecoder mask_decoder{nullptr};
};
TORCH_MODULE(Sam);

}  // namespace nephroseg::sam
