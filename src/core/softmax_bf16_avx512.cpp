// The AVX-512 form of softmax_bf16_block (core/softmax_bf16.h). This file alone is
// compiled with -mavx512f -mavx512bw -mavx512vl -mfma (src/core/CMakeLists.txt); the
// caller checks the CPU first.
#include <immintrin.h>

#include <cstdint>

#include "core/softmax_bf16.h"

namespace nephroseg::detail {

namespace {

inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
}

inline __m512 load_bf16(__mmask16 m, const uint16_t* p) {
  const __m256i h = _mm256_maskz_loadu_epi16(m, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// bf16 by round to nearest even (the probabilities are finite and non-negative).
inline void store_bf16(__mmask16 m, uint16_t* p, __m512 v) {
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounded =
      _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
  _mm256_mask_storeu_epi16(p, m, _mm512_cvtepi32_epi16(_mm512_srli_epi32(rounded, 16)));
}

// exp(x) for x <= 0 (x - row max): x = n ln2 + r, |r| <= ln2 / 2, exp(r) by its Taylor
// series to r^7 (truncation error < 2e-8 relative), times 2^n by scalef. Inputs below
// -87.3 (exp under FLT_MIN) are clamped there: their share of a row sum is < 1e-37.
inline __m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.3f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);  // ln2, high part
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723e-6f), r);    // ln2, low part
  __m512 p = _mm512_set1_ps(1.f / 5040.f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 720.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 120.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 24.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f / 6.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.f));
  return _mm512_scalef_ps(p, n);
}

}  // namespace

void softmax_bf16_block_avx512(const uint16_t* in, int64_t in_stride, uint16_t* out,
                               int64_t out_stride, int64_t rows, int64_t n, float scale,
                               const float* rel_h, int64_t rel_h_stride, const float* rel_w,
                               int64_t rel_w_stride, int64_t kh, int64_t kw, float* s) {
  const __m512 vscale = _mm512_set1_ps(scale);
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* x = in + r * in_stride;
    const float* rh = rel_h ? rel_h + r * rel_h_stride : nullptr;
    const float* rw = rel_w ? rel_w + r * rel_w_stride : nullptr;
    // Pass 1: s = scale * x + rel_h + rel_w, and the row max.
    __m512 vmax = _mm512_set1_ps(-3.0e38f);
    for (int64_t a = 0; a < kh; ++a) {
      const __m512 h = _mm512_set1_ps(rh ? rh[a] : 0.f);
      const int64_t base = a * kw;
      for (int64_t c = 0; c < kw; c += 16) {
        const __mmask16 m = tail_mask(kw - c);
        __m512 v = _mm512_fmadd_ps(load_bf16(m, x + base + c), vscale, h);
        if (rw) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, rw + c));
        _mm512_mask_storeu_ps(s + base + c, m, v);
        vmax = _mm512_mask_max_ps(vmax, m, vmax, v);
      }
    }
    const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    // Pass 2: s = exp(s - max), and the row sum.
    __m512 vsum = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 m = tail_mask(n - j);
      const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + j), mx));
      _mm512_mask_storeu_ps(s + j, m, e);
      vsum = _mm512_mask_add_ps(vsum, m, vsum, e);
    }
    const __m512 inv = _mm512_set1_ps(1.f / _mm512_reduce_add_ps(vsum));
    // Pass 3: probabilities to bf16.
    uint16_t* y = out + r * out_stride;
    for (int64_t j = 0; j < n; j += 16) {
      const __mmask16 m = tail_mask(n - j);
      store_bf16(m, y + j, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + j), inv));
    }
  }
}

}  // namespace nephroseg::detail
