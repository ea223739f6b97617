// src/core/softmax_bf16.h (internal): the attention softmax of the bf16 encoders in one
// pass over the logits, with SAM's decomposed relative-position terms folded in.
//
// For each row r of a bf16 logit block (row length n = kh * kw):
//   s[j]   = scale * logits[r, j] + rel_h[r, j / kw] + rel_w[r, j % kw]   (float32)
//   out[r] = softmax(s)                                                   (bf16)
// The sum, the max and the exponentials are float32; only the stored probabilities
// are rounded to bf16 (round to nearest even), as the reference's bf16 softmax does.
// ATen 1.13 runs the same work as three broadcast adds and a softmax, each a full
// pass in bf16 with its own rounding: in a SAM ViT-B windowed block they took 1.6x
// the time of the block's matmuls (docs/precision.md).
//
// rel_h / rel_w are optional (nullptr: DINOv2's plain softmax). The AVX-512 kernel
// runs where the CPU has AVX-512BW (every CPU with native bf16 does), a scalar loop
// elsewhere; both give the same float32 sums up to the order of additions.
//
//   // logits: [rows, n] bf16; rel_h: [rows, kh] f32; rel_w: [rows, kw] f32
//   softmax_bf16_rows(logits, 0.125, &rel_h, &rel_w, kh, kw, logits);  // in place
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace nephroseg {

/// Raw kernel on one block of rows (no threading). Strides are in elements; `out`
/// may equal `in` (then out_stride must equal in_stride). rel_h: [rows, kh] float32,
/// rel_w: [rows, kw] float32, either may be null (then kh * kw need not equal n;
/// with both null the row is just scale * logits). `scratch`: n floats.
void softmax_bf16_block(const uint16_t* in, int64_t in_stride, uint16_t* out, int64_t out_stride,
                        int64_t rows, int64_t n, float scale, const float* rel_h,
                        int64_t rel_h_stride, const float* rel_w, int64_t rel_w_stride,
                        int64_t kh, int64_t kw, float* scratch);

/// Tensor form, parallel over rows (at::parallel_for; serial when called from inside
/// a parallel region). logits, out: [..., n] bf16 with a contiguous last dimension,
/// viewed as [rows, n]; rel_h: [rows, kh] and rel_w: [rows, kw] float32 (any leading
/// shape with that many elements, contiguous), or undefined tensors. out may be logits.
void softmax_bf16_rows(const at::Tensor& logits, double scale, const at::Tensor& rel_h,
                       const at::Tensor& rel_w, int64_t kh, int64_t kw, const at::Tensor& out);

/// True where the vectorised kernel runs (AVX-512BW at run time).
bool softmax_bf16_vectorized();

namespace detail {
// The two forms softmax_bf16_block dispatches to (the tests compare them).
void softmax_bf16_block_scalar(const uint16_t* in, int64_t in_stride, uint16_t* out,
                               int64_t out_stride, int64_t rows, int64_t n, float scale,
                               const float* rel_h, int64_t rel_h_stride, const float* rel_w,
                               int64_t rel_w_stride, int64_t kh, int64_t kw, float* scratch);
// softmax_bf16_avx512.cpp, compiled for AVX-512; call only when
// softmax_bf16_vectorized() is true.
void softmax_bf16_block_avx512(const uint16_t* in, int64_t in_stride, uint16_t* out,
                               int64_t out_stride, int64_t rows, int64_t n, float scale,
                               const float* rel_h, int64_t rel_h_stride, const float* rel_w,
                               int64_t rel_w_stride, int64_t kh, int64_t kw, float* scratch);
}  // namespace detail

}  // namespace nephroseg
