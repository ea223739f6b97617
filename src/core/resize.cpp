// Pillow-compatible 8-bit resampling. Ref: Pillow 9.4 src/libImaging/Resample.c
// (precompute_coeffs, normalize_coeffs_8bpc, ImagingResampleHorizontal_8bpc,
// ImagingResampleVertical_8bpc, ImagingResampleInner).
#include "nephroseg/core/resize.h"

#include <ATen/ATen.h>

#include <cmath>
#include <vector>

#include "nephroseg/core/error.h"

namespace nephroseg {
namespace {

// Pillow keeps 8 bits for the pixel, 2 for headroom, the rest for the fraction.
constexpr int kPrecisionBits = 32 - 8 - 2;

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

double bicubic_filter(double x) {
  constexpr double a = -0.5;  // Pillow's choice (Keys' kernel); torch uses -0.75.
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Fixed-point filter taps for one axis: output i reads input [bounds[2i],
// bounds[2i] + bounds[2i+1]) with taps coeffs[i*ksize ...].
struct Taps {
  int ksize = 0;
  std::vector<int> bounds;
  std::vector<int32_t> coeffs;
};

// Ref: Resample.c::precompute_coeffs + normalize_coeffs_8bpc (box = whole image).
Taps precompute_taps(int in_size, int out_size, PilFilter filter) {
  double (*fn)(double) = filter == PilFilter::kBilinear ? bilinear_filter : bicubic_filter;
  const double filter_support = filter == PilFilter::kBilinear ? 1.0 : 2.0;
  // Pillow passes the box as floats; the whole-image box is exact in float.
  const float in0 = 0.0f;
  const float in1 = static_cast<float>(in_size);
  const double scale = static_cast<double>(in1 - in0) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = filter_support * filterscale;
  Taps taps;
  taps.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  taps.bounds.assign(static_cast<size_t>(out_size) * 2, 0);
  taps.coeffs.assign(static_cast<size_t>(out_size) * taps.ksize, 0);
  std::vector<double> k(taps.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = fn((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      if (ww != 0.0) k[x] /= ww;
    }
    int32_t* out = &taps.coeffs[static_cast<size_t>(xx) * taps.ksize];
    for (int x = 0; x < xmax; ++x) {
      const double v = k[x] * (1 << kPrecisionBits);
      out[x] = static_cast<int32_t>(k[x] < 0 ? -0.5 + v : 0.5 + v);
    }
    taps.bounds[2 * xx] = xmin;
    taps.bounds[2 * xx + 1] = xmax;
  }
  return taps;
}

inline uint8_t clip8(int32_t in) {
  if (in >= (1 << kPrecisionBits << 8)) return 255;
  if (in <= 0) return 0;
  return static_cast<uint8_t>(in >> kPrecisionBits);
}

// Ref: Resample.c::ImagingResampleHorizontal_8bpc. Rows [row0, row0 + rows) of src.
void resample_horizontal(const uint8_t* src, int64_t src_stride, int channels, int row0,
                         int rows, const Taps& taps, int out_w, uint8_t* dst) {
  for (int y = 0; y < rows; ++y) {
    const uint8_t* in = src + (row0 + y) * src_stride;
    uint8_t* out = dst + static_cast<int64_t>(y) * out_w * channels;
    for (int xx = 0; xx < out_w; ++xx) {
      const int xmin = taps.bounds[2 * xx];
      const int xmax = taps.bounds[2 * xx + 1];
      const int32_t* k = &taps.coeffs[static_cast<size_t>(xx) * taps.ksize];
      for (int c = 0; c < channels; ++c) {
        int32_t ss = 1 << (kPrecisionBits - 1);
        for (int x = 0; x < xmax; ++x) ss += in[(x + xmin) * channels + c] * k[x];
        out[xx * channels + c] = clip8(ss);
      }
    }
  }
}

// Ref: Resample.c::ImagingResampleVertical_8bpc. `row_shift` re-bases the bounds on
// the first row the horizontal pass produced.
void resample_vertical(const uint8_t* src, int64_t src_stride, int channels, int width,
                       const Taps& taps, int row_shift, int out_h, uint8_t* dst) {
  for (int yy = 0; yy < out_h; ++yy) {
    const int ymin = taps.bounds[2 * yy] - row_shift;
    const int ymax = taps.bounds[2 * yy + 1];
    const int32_t* k = &taps.coeffs[static_cast<size_t>(yy) * taps.ksize];
    uint8_t* out = dst + static_cast<int64_t>(yy) * width * channels;
    for (int i = 0; i < width * channels; ++i) {
      int32_t ss = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < ymax; ++y) ss += src[(y + ymin) * src_stride + i] * k[y];
      out[i] = clip8(ss);
    }
  }
}

}  // namespace

void pil_resize(const uint8_t* src, int h, int w, int channels, int64_t src_stride,
                uint8_t* dst, int out_h, int out_w, PilFilter filter) {
  NEPHRO_CHECK(h > 0 && w > 0, "pil_resize: empty input image (", h, "x", w, ")");
  NEPHRO_CHECK(out_h > 0 && out_w > 0, "pil_resize: output size must be positive, got ",
               out_h, "x", out_w);
  NEPHRO_CHECK(channels >= 1 && channels <= 4, "pil_resize: 1..4 channels supported, got ",
               channels);
  const int64_t row_bytes = static_cast<int64_t>(w) * channels;
  if (out_h == h && out_w == w) {
    for (int y = 0; y < h; ++y) std::copy(src + y * src_stride, src + y * src_stride + row_bytes,
                                          dst + y * row_bytes);
    return;
  }
  // Ref: Resample.c::ImagingResampleInner. Both tap tables are computed up front;
  // the horizontal pass only produces the rows the vertical taps touch.
  const bool need_horizontal = out_w != w;
  const bool need_vertical = out_h != h;
  const Taps horiz = precompute_taps(w, out_w, filter);
  const Taps vert = precompute_taps(h, out_h, filter);
  const int ybox_first = vert.bounds[0];
  const int ybox_last = vert.bounds[2 * out_h - 2] + vert.bounds[2 * out_h - 1];

  if (need_horizontal && need_vertical) {
    const int rows = ybox_last - ybox_first;
    std::vector<uint8_t> tmp(static_cast<size_t>(rows) * out_w * channels);
    resample_horizontal(src, src_stride, channels, ybox_first, rows, horiz, out_w, tmp.data());
    resample_vertical(tmp.data(), static_cast<int64_t>(out_w) * channels, channels, out_w, vert,
                      ybox_first, out_h, dst);
  } else if (need_horizontal) {
    resample_horizontal(src, src_stride, channels, 0, h, horiz, out_w, dst);
  } else {
    resample_vertical(src, src_stride, channels, w, vert, 0, out_h, dst);
  }
}

at::Tensor pil_resize(const at::Tensor& image, int64_t out_h, int64_t out_w, PilFilter filter) {
  NEPHRO_CHECK(image.defined(), "pil_resize: undefined image tensor");
  NEPHRO_CHECK(image.scalar_type() == at::kByte, "pil_resize: expected a uint8 image, got ",
               image.scalar_type());
  NEPHRO_CHECK(image.dim() == 2 || image.dim() == 3,
               "pil_resize: expected [H, W] or [H, W, C], got shape ", image.sizes());
  NEPHRO_CHECK(image.device().is_cpu(), "pil_resize: image must be on the CPU");
  const at::Tensor src = image.dim() == 2 ? image.unsqueeze(-1).contiguous() : image.contiguous();
  const int channels = static_cast<int>(src.size(2));
  at::Tensor out = at::empty({out_h, out_w, channels}, src.options());
  pil_resize(src.data_ptr<uint8_t>(), static_cast<int>(src.size(0)), static_cast<int>(src.size(1)),
             channels, src.size(1) * channels, out.data_ptr<uint8_t>(), static_cast<int>(out_h),
             static_cast<int>(out_w), filter);
  return image.dim() == 2 ? out.squeeze(-1) : out;
}

}  // namespace nephroseg
