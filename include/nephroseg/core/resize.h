// nephroseg/core/resize.h: Pillow-compatible resampling of 8-bit images.
//
// Reproduces Pillow's `Image.resize(size, filter)` for 8-bit images ("L", "RGB",
// and any 1..4-channel uint8 layout) byte for byte: the same separable two-pass
// convolution (horizontal pass first, over only the rows the vertical pass needs),
// the same support widening on downscale (antialiasing), the same fixed-point
// coefficients (22 fractional bits) and the same rounding and clipping. SAM's
// preprocessing (torchvision `resize` on a PIL image, BILINEAR) and GBMSeg's
// `Image.resize((560, 560))` (BICUBIC, Pillow's default) go through this.
//
// Thread-safety: pure functions; safe to call concurrently.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace nephroseg {

/// Pillow resampling filters supported here (Pillow's Resampling.BILINEAR and
/// Resampling.BICUBIC; bicubic uses a = -0.5 like Pillow).
enum class PilFilter { kBilinear, kBicubic };

/// Resizes `image` ([H, W] or [H, W, C] uint8, C in 1..4, CPU; any strides) to
/// out_h x out_w with Pillow's algorithm. Returns a contiguous uint8 tensor with the
/// same rank ([out_h, out_w] or [out_h, out_w, C]). Equal sizes return a copy.
/// Throws nephroseg::Error on a wrong dtype/rank or a non-positive size.
at::Tensor pil_resize(const at::Tensor& image, int64_t out_h, int64_t out_w, PilFilter filter);

/// Raw-buffer form: `src` is h x w x channels interleaved uint8 with row stride
/// `src_stride` bytes; `dst` receives out_h x out_w x channels, tightly packed.
void pil_resize(const uint8_t* src, int h, int w, int channels, int64_t src_stride,
                uint8_t* dst, int out_h, int out_w, PilFilter filter);

}  // namespace nephroseg
