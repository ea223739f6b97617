#include "nephroseg/core/skimage_resize.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "nephroseg/core/error.h"

namespace nephroseg {
namespace {

// scipy.ndimage 'mirror' border (skimage's 'reflect'): d c b | a b c d | c b a.
int64_t mirror_index(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * n - 2;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

// scipy's Gaussian kernel for gaussian_filter1d(truncate=4.0): radius
// int(4 sigma + 0.5), normalised to sum 1.
std::vector<double> gaussian_kernel(double sigma) {
  const int64_t r = static_cast<int64_t>(4.0 * sigma + 0.5);
  std::vector<double> w(2 * r + 1);
  double sum = 0;
  for (int64_t j = -r; j <= r; ++j) {
    w[j + r] = std::exp(-0.5 / (sigma * sigma) * static_cast<double>(j * j));
    sum += w[j + r];
  }
  for (double& v : w) v /= sum;
  return w;
}

// Correlates one line of n samples, `step` apart, with kernel `w` (mode='mirror').
void gaussian_line(double* p, int64_t n, int64_t step, const std::vector<double>& w,
                   std::vector<double>& line) {
  const int64_t r = static_cast<int64_t>(w.size() / 2);
  line.resize(n);
  for (int64_t k = 0; k < n; ++k) line[k] = p[k * step];
  for (int64_t k = 0; k < n; ++k) {
    double acc = 0;
    for (int64_t j = -r; j <= r; ++j) acc += w[j + r] * line[mirror_index(k + j, n)];
    p[k * step] = acc;
  }
}

// scipy.ndimage.spline_filter1d(order=3, mode='mirror') on one line: interpolating
// cubic B-spline coefficients by one causal and one anti-causal recursion.
void spline_line(double* p, int64_t n, int64_t step, std::vector<double>& c) {
  if (n < 2) return;
  const double z = -0.267949192431122706472553658494127633;  // sqrt(3) - 2, as scipy
  const double gain = (1.0 - z) * (1.0 - 1.0 / z);
  c.resize(n);
  for (int64_t k = 0; k < n; ++k) c[k] = p[k * step] * gain;
  // Causal initialisation for a mirror-symmetric signal.
  double zi = z;
  const double zn1 = std::pow(z, static_cast<double>(n - 1));
  c[0] = c[0] + zn1 * c[n - 1];
  for (int64_t i = 1; i < n - 1; ++i) {
    c[0] += zi * (c[i] + zn1 * c[n - 1 - i]);
    zi *= z;
  }
  c[0] /= 1 - zn1 * zn1;
  for (int64_t i = 1; i < n; ++i) c[i] += z * c[i - 1];
  c[n - 1] = (z * c[n - 2] + c[n - 1]) * z / (z * z - 1);
  for (int64_t i = n - 2; i >= 0; --i) c[i] = z * (c[i + 1] - c[i]);
  for (int64_t k = 0; k < n; ++k) p[k * step] = c[k];
}

// scipy's map_coordinate for 'mirror': folds a sample coordinate into the signal.
double mirror_coordinate(double x, int64_t n) {
  if (n <= 1) return 0.0;
  const int64_t period = 2 * n - 2;
  if (x < 0) {
    x = static_cast<double>(period * static_cast<int64_t>(-x / period)) + x;
    x = x <= static_cast<double>(1 - n) ? x + static_cast<double>(period) : -x;
  } else if (x > static_cast<double>(n - 1)) {
    x -= static_cast<double>(period * static_cast<int64_t>(x / period));
    if (x >= static_cast<double>(n)) x = static_cast<double>(period) - x;
  }
  return x;
}

// Sample positions and cubic B-spline weights for one output axis (grid mode), with
// scipy's formulas (get_spline_interpolation_weights, order 3).
struct Taps {
  std::vector<int64_t> index;  // [out, 4] mirrored input indices
  std::vector<double> weight;  // [out, 4]
};

Taps spline_taps(int64_t in_n, int64_t out_n) {
  Taps t;
  t.index.resize(out_n * 4);
  t.weight.resize(out_n * 4);
  const double zoom = static_cast<double>(in_n) / static_cast<double>(out_n);
  for (int64_t o = 0; o < out_n; ++o) {
    double x = static_cast<double>(o) + 0.5;
    x *= zoom;
    x -= 0.5;
    x = mirror_coordinate(x, in_n);
    const double f = std::floor(x);
    const double y = x - f;  // offset from the knot at floor(x)
    const double z = 1.0 - y;
    double* w = &t.weight[o * 4];
    w[1] = (y * y * (y - 2.0) * 3.0 + 4.0) / 6.0;
    w[2] = (z * z * (z - 2.0) * 3.0 + 4.0) / 6.0;
    w[0] = z * z * z / 6.0;
    w[3] = 1.0;
    for (int k = 0; k < 3; ++k) w[3] -= w[k];
    const int64_t start = static_cast<int64_t>(f) - 1;
    for (int k = 0; k < 4; ++k) t.index[o * 4 + k] = mirror_index(start + k, in_n);
  }
  return t;
}

}  // namespace

at::Tensor skimage_resize_cubic(const at::Tensor& image, int64_t out_h, int64_t out_w) {
  NEPHRO_CHECK(image.scalar_type() == at::kByte, "skimage resize: image must be uint8, got ",
               image.scalar_type());
  NEPHRO_CHECK(image.device().is_cpu(), "skimage resize: image must be a CPU tensor");
  NEPHRO_CHECK(image.dim() == 2 || image.dim() == 3,
               "skimage resize: image must be [H, W] or [H, W, C], got shape ", image.sizes());
  NEPHRO_CHECK(image.numel() > 0, "skimage resize: empty image ", image.sizes());
  NEPHRO_CHECK(out_h > 0 && out_w > 0, "skimage resize: output size must be positive, got ",
               out_h, "x", out_w);
  const at::Tensor hwc = (image.dim() == 2 ? image.unsqueeze(2) : image).contiguous();
  const int64_t H = hwc.size(0), W = hwc.size(1), C = hwc.size(2);
  const uint8_t* src = hwc.data_ptr<uint8_t>();

  // Clip bounds: the input's value range over every channel (clip=True).
  uint8_t lo = 255, hi = 0;
  for (int64_t i = 0; i < H * W * C; ++i) {
    lo = std::min(lo, src[i]);
    hi = std::max(hi, src[i]);
  }
  // Float64 copy, interleaved [H, W, C] as numpy holds it.
  std::vector<double> img(H * W * C), tmp;
  for (int64_t i = 0; i < H * W * C; ++i) img[i] = src[i];
  // Anti-aliasing (gaussian_filter over axes 0 and 1; sigma 0 along channels).
  const double sy = std::max(0.0, (static_cast<double>(H) / out_h - 1.0) / 2.0);
  const double sx = std::max(0.0, (static_cast<double>(W) / out_w - 1.0) / 2.0);
  if (sy > 1e-15) {
    const std::vector<double> k = gaussian_kernel(sy);
    for (int64_t i = 0; i < W * C; ++i) gaussian_line(img.data() + i, H, W * C, k, tmp);
  }
  if (sx > 1e-15) {
    const std::vector<double> k = gaussian_kernel(sx);
    for (int64_t y = 0; y < H; ++y) {
      for (int64_t c = 0; c < C; ++c) gaussian_line(img.data() + y * W * C + c, W, C, k, tmp);
    }
  }
  // Spline prefilter along every axis (numpy order: 0, 1, then the channel axis).
  for (int64_t i = 0; i < W * C; ++i) spline_line(img.data() + i, H, W * C, tmp);
  for (int64_t y = 0; y < H; ++y) {
    for (int64_t c = 0; c < C; ++c) spline_line(img.data() + y * W * C + c, W, C, tmp);
  }
  if (image.dim() == 3) {
    for (int64_t i = 0; i < H * W; ++i) spline_line(img.data() + i * C, C, 1, tmp);
  }
  // Evaluation as scipy's zoom_shift: per output sample, the sum over every tap
  // combination (last axis fastest) of coefficient * w0 * w1 [* w2].
  const Taps ty = spline_taps(H, out_h), tx = spline_taps(W, out_w), tc = spline_taps(C, C);
  const bool has_channel_axis = image.dim() == 3;
  at::Tensor out = at::empty({out_h, out_w, C}, at::kByte);
  uint8_t* dst = out.data_ptr<uint8_t>();
  const double dlo = lo, dhi = hi;
  at::parallel_for(0, out_h, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t o = r0; o < r1; ++o) {
      const int64_t* iy = &ty.index[o * 4];
      const double* wy = &ty.weight[o * 4];
      for (int64_t p = 0; p < out_w; ++p) {
        const int64_t* ix = &tx.index[p * 4];
        const double* wx = &tx.weight[p * 4];
        for (int64_t c = 0; c < C; ++c) {
          double t = 0.0;
          for (int i = 0; i < 4; ++i) {
            for (int j = 0; j < 4; ++j) {
              const double* px = img.data() + (iy[i] * W + ix[j]) * C;
              if (has_channel_axis) {
                const int64_t* ic = &tc.index[c * 4];
                const double* wc = &tc.weight[c * 4];
                for (int k = 0; k < 4; ++k) {
                  double coeff = px[ic[k]];
                  coeff *= wy[i];
                  coeff *= wx[j];
                  coeff *= wc[k];
                  t += coeff;
                }
              } else {
                double coeff = px[0];
                coeff *= wy[i];
                coeff *= wx[j];
                t += coeff;
              }
            }
          }
          t = std::min(std::max(t, dlo), dhi);                       // clip=True
          dst[(o * out_w + p) * C + c] = static_cast<uint8_t>(t);  // astype(uint8) truncates
        }
      }
    }
  });
  return image.dim() == 2 ? out.squeeze(2).contiguous() : out;
}

}  // namespace nephroseg
