#include "core/softmax_bf16.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "nephroseg/core/error.h"

namespace nephroseg {

namespace {

float bf16_to_float(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Round to nearest even, as c10::BFloat16's round_to_nearest_even (NaN stays NaN).
uint16_t float_to_bf16(float f) {
  if (std::isnan(f)) return 0x7FC0;
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

}  // namespace

void detail::softmax_bf16_block_scalar(const uint16_t* in, int64_t in_stride, uint16_t* out,
                                       int64_t out_stride, int64_t rows, int64_t n, float scale,
                                       const float* rel_h, int64_t rel_h_stride,
                                       const float* rel_w, int64_t rel_w_stride, int64_t kh,
                                       int64_t kw, float* s) {
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* x = in + r * in_stride;
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < n; ++j) {
      float v = scale * bf16_to_float(x[j]);
      if (rel_h) v += rel_h[r * rel_h_stride + j / kw];
      if (rel_w) v += rel_w[r * rel_w_stride + j % kw];
      s[j] = v;
      mx = std::max(mx, v);
    }
    float sum = 0.f;
    for (int64_t j = 0; j < n; ++j) {
      s[j] = std::exp(s[j] - mx);
      sum += s[j];
    }
    const float inv = 1.f / sum;
    uint16_t* y = out + r * out_stride;
    for (int64_t j = 0; j < n; ++j) y[j] = float_to_bf16(s[j] * inv);
  }
}

namespace {

bool cpu_has_avx512bw() {
#if defined(NEPHROSEG_AVX512_KERNELS)
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  return has;
#else
  return false;
#endif
}

}  // namespace

bool softmax_bf16_vectorized() { return cpu_has_avx512bw(); }

void softmax_bf16_block(const uint16_t* in, int64_t in_stride, uint16_t* out, int64_t out_stride,
                        int64_t rows, int64_t n, float scale, const float* rel_h,
                        int64_t rel_h_stride, const float* rel_w, int64_t rel_w_stride,
                        int64_t kh, int64_t kw, float* scratch) {
  if (rows <= 0 || n <= 0) return;
  if (!rel_w) {  // no column term: one block of n columns (rel_h, if any, is [rows, 1])
    kh = 1;
    kw = n;
  }
#if defined(NEPHROSEG_AVX512_KERNELS)
  if (cpu_has_avx512bw()) {
    detail::softmax_bf16_block_avx512(in, in_stride, out, out_stride, rows, n, scale, rel_h,
                                      rel_h_stride, rel_w, rel_w_stride, kh, kw, scratch);
    return;
  }
#endif
  detail::softmax_bf16_block_scalar(in, in_stride, out, out_stride, rows, n, scale, rel_h,
                                    rel_h_stride, rel_w, rel_w_stride, kh, kw, scratch);
}

void softmax_bf16_rows(const at::Tensor& logits, double scale, const at::Tensor& rel_h,
                       const at::Tensor& rel_w, int64_t kh, int64_t kw, const at::Tensor& out) {
  NEPHRO_CHECK(logits.scalar_type() == at::kBFloat16 && out.scalar_type() == at::kBFloat16,
               "internal: softmax_bf16_rows needs bf16 logits and output");
  NEPHRO_CHECK(logits.dim() >= 1 && logits.stride(-1) == 1 && out.stride(-1) == 1 &&
                   logits.sizes() == out.sizes(),
               "internal: softmax_bf16_rows needs same-shape tensors with a contiguous last dim");
  const int64_t n = logits.size(-1);
  const at::Tensor in2 = logits.reshape({-1, n});
  const at::Tensor out2 = out.view({-1, n});
  NEPHRO_CHECK(in2.stride(-1) == 1 && out2.stride(-1) == 1 &&
                   (!out.is_same(logits) || in2.data_ptr() == out2.data_ptr()),
               "internal: softmax_bf16_rows: rows must be evenly strided");
  const int64_t rows = in2.size(0);
  const bool has_h = rel_h.defined(), has_w = rel_w.defined();
  if (has_h || has_w) {
    NEPHRO_CHECK(has_h && has_w && kh * kw == n,
                 "internal: softmax_bf16_rows: rel-pos terms need both tables and kh * kw == n");
    NEPHRO_CHECK(rel_h.scalar_type() == at::kFloat && rel_w.scalar_type() == at::kFloat &&
                     rel_h.is_contiguous() && rel_w.is_contiguous() &&
                     rel_h.numel() == rows * kh && rel_w.numel() == rows * kw,
                 "internal: softmax_bf16_rows: rel-pos tables must be contiguous float32 [rows, k]");
  }
  const auto* in_p = reinterpret_cast<const uint16_t*>(in2.data_ptr());
  auto* out_p = reinterpret_cast<uint16_t*>(out2.data_ptr());
  const float* rh = has_h ? rel_h.data_ptr<float>() : nullptr;
  const float* rw = has_w ? rel_w.data_ptr<float>() : nullptr;
  const int64_t in_stride = in2.stride(0), out_stride = out2.stride(0);
  // About 64 K elements per task.
  const int64_t grain = std::max<int64_t>(1, 65536 / n);
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(static_cast<size_t>(n));
    softmax_bf16_block(in_p + begin * in_stride, in_stride, out_p + begin * out_stride, out_stride,
                       end - begin, n, static_cast<float>(scale), rh ? rh + begin * kh : nullptr, kh,
                       rw ? rw + begin * kw : nullptr, kw, kh, kw, scratch.data());
  });
}

}  // namespace nephroseg
