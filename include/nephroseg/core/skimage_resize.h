// nephroseg/core/skimage_resize.h: scikit-image's cubic-spline resize of 8-bit images.
//
// Reproduces MedSAM's preprocessing, `skimage.transform.resize(img, (h, w), order=3,
// preserve_range=True, anti_aliasing=True).astype(np.uint8)` (skimage >= 0.19 with
// SciPy >= 1.6): in float64, a Gaussian pre-filter along every axis that shrinks
// (sigma = (in/out - 1) / 2, truncated at 4 sigma, mirror border), the cubic B-spline
// prefilter, spline evaluation at (o + 0.5) * in/out - 0.5 (mirror border), clipping
// to the input's value range, and truncation to uint8. The channel axis is
// prefiltered and evaluated too (zoom 1), with scipy's summation order, so that even
// samples landing exactly on input pixels round as scikit-image's do.
//
// Thread-safety: pure function; safe to call concurrently.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace nephroseg {

/// `image`: [H, W] or [H, W, C] uint8 on the CPU (any strides). Returns a contiguous
/// uint8 tensor of the same rank with out_h x out_w pixels. Throws nephroseg::Error on
/// a wrong dtype or rank, an empty image or a non-positive size.
at::Tensor skimage_resize_cubic(const at::Tensor& image, int64_t out_h, int64_t out_w);

}  // namespace nephroseg
