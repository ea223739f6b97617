// core/softmax_bf16.h: the fused bf16 attention softmax, both kernels, against ATen's
// float32 softmax of the same sums built with ordinary broadcast ops.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

#include "core/softmax_bf16.h"
#include "nephroseg/core/error.h"

namespace nephroseg {
namespace {

struct Case {
  int64_t rows, kh, kw;
  bool rel;
};

// float32 reference: softmax(scale * x + rel_h[:, j / kw] + rel_w[:, j % kw]).
at::Tensor reference(const at::Tensor& x, double scale, const at::Tensor& rel_h,
                     const at::Tensor& rel_w, int64_t kh, int64_t kw) {
  at::Tensor s = x.to(at::kFloat) * scale;
  if (rel_h.defined()) {
    s = (s.view({-1, kh, kw}) + rel_h.view({-1, kh, 1}) + rel_w.view({-1, 1, kw}))
            .view({-1, kh * kw});
  }
  return s.softmax(-1);
}

// bf16 rounding of the exact probability costs at most half a bf16 ulp (2^-9 relative);
// the float32 sums and exponentials add far less.
void expect_close(const at::Tensor& got_bf16, const at::Tensor& ref, const std::string& what) {
  const at::Tensor got = got_bf16.to(at::kFloat);
  const at::Tensor bound = ref.abs() * (1.0 / 256) + 1e-30;
  const at::Tensor excess = (got - ref).abs() - bound;
  EXPECT_LE(excess.max().item<float>(), 0.f)
      << what << ": max |err| " << (got - ref).abs().max().item<float>();
  EXPECT_LT((got.sum(-1) - 1).abs().max().item<float>(), 0.02f) << what;
}

void run_block(bool vector, const at::Tensor& x, double scale, const at::Tensor& rel_h,
               const at::Tensor& rel_w, int64_t kh, int64_t kw, at::Tensor& out) {
  const int64_t rows = x.size(0), n = x.size(1);
  std::vector<float> scratch(static_cast<size_t>(n));
  const auto* in = reinterpret_cast<const uint16_t*>(x.data_ptr());
  auto* o = reinterpret_cast<uint16_t*>(out.data_ptr());
  const float* rh = rel_h.defined() ? rel_h.data_ptr<float>() : nullptr;
  const float* rw = rel_w.defined() ? rel_w.data_ptr<float>() : nullptr;
  if (!rw) {
    kh = 1;
    kw = n;
  }
#if defined(__x86_64__)
  if (vector) {
    detail::softmax_bf16_block_avx512(in, n, o, n, rows, n, static_cast<float>(scale), rh, kh, rw,
                                      kw, kh, kw, scratch.data());
    return;
  }
#endif
  {
    detail::softmax_bf16_block_scalar(in, n, o, n, rows, n, static_cast<float>(scale), rh, kh, rw,
                                      kw, kh, kw, scratch.data());
  }
}

TEST(SoftmaxBf16, BothKernelsMatchFloatSoftmaxOfTheSameSums) {
  at::manual_seed(7);
  // SAM windowed (14 x 14 keys: kw not a multiple of 16), SAM global (64 x 64), DINOv2
  // (1601 tokens, no rel terms), and a row shorter than one vector.
  const std::vector<Case> cases = {{37, 14, 14, true}, {5, 64, 64, true}, {9, 1, 1601, false},
                                   {4, 1, 5, false}, {3, 2, 3, true}};
  for (const bool vector : {false, true}) {
    if (vector && !softmax_bf16_vectorized()) {
      std::cout << "[ SKIPPED part ] this CPU has no AVX-512BW: vector kernel not tested\n";
      continue;
    }
    for (const Case& c : cases) {
      const int64_t n = c.kh * c.kw;
      const at::Tensor x = (at::randn({c.rows, n}) * 4).to(at::kBFloat16);
      at::Tensor rel_h, rel_w;
      if (c.rel) {
        rel_h = at::randn({c.rows, c.kh}) * 2;
        rel_w = at::randn({c.rows, c.kw}) * 2;
      }
      at::Tensor out = at::empty_like(x);
      run_block(vector, x, 0.125, rel_h, rel_w, c.kh, c.kw, out);
      expect_close(out, reference(x, 0.125, rel_h, rel_w, c.kh, c.kw),
                   std::string(vector ? "avx512" : "scalar") + " n=" + std::to_string(n));
    }
  }
}

TEST(SoftmaxBf16, LargeLogitsDoNotOverflowAndTinyOnesVanish) {
  // exp of raw logits of +-3e4 overflows float32; the max subtraction must keep this
  // finite, and the row must be one-hot.
  at::Tensor x = at::full({2, 40}, -3.0e4).to(at::kBFloat16);
  x[0][17] = 3.0e4;
  x[1][39] = 3.0e4;  // in the tail of the vector loop
  at::Tensor out = at::empty_like(x);
  softmax_bf16_rows(x, 1.0, at::Tensor(), at::Tensor(), 0, 0, out);
  const at::Tensor f = out.to(at::kFloat);
  EXPECT_FLOAT_EQ(f[0][17].item<float>(), 1.f);
  EXPECT_FLOAT_EQ(f[1][39].item<float>(), 1.f);
  EXPECT_FLOAT_EQ(f.sum().item<float>(), 2.f);
  EXPECT_TRUE(at::isfinite(f).all().item<bool>());
}

TEST(SoftmaxBf16, TensorFormRunsInPlaceOverLeadingDimsInParallel) {
  at::manual_seed(3);
  // [batch*heads, queries, keys] as SAM's windowed attention has it, rel tables per row.
  const int64_t bh = 6, q = 196, kh = 14, kw = 14;
  const at::Tensor x = (at::randn({bh, q, kh * kw}) * 3).to(at::kBFloat16);
  const at::Tensor rel_h = at::randn({bh, 14, 14, kh});  // [B, q_h, q_w, k_h]
  const at::Tensor rel_w = at::randn({bh, 14, 14, kw});
  const at::Tensor ref = reference(x.view({-1, kh * kw}), 0.5, rel_h, rel_w, kh, kw);
  at::Tensor inplace = x.clone();
  softmax_bf16_rows(inplace, 0.5, rel_h, rel_w, kh, kw, inplace);
  expect_close(inplace.view({-1, kh * kw}), ref, "in place");
  // A row view of a wider buffer (the global kernel's bands).
  at::Tensor wide = at::zeros({bh * q, kh * kw + 8}, at::kBFloat16);
  at::Tensor band = wide.narrow(1, 0, kh * kw);
  band.copy_(x.view({-1, kh * kw}));
  softmax_bf16_rows(band, 0.5, rel_h, rel_w, kh, kw, band);
  expect_close(band, ref, "strided rows");
  EXPECT_EQ(wide.narrow(1, kh * kw, 8).abs().sum().item<float>(), 0.f) << "wrote past the row";
}

TEST(SoftmaxBf16, RefusesMismatchedInputs) {
  const at::Tensor x = at::zeros({4, 6}, at::kBFloat16);
  EXPECT_THROW(softmax_bf16_rows(x.to(at::kFloat), 1.0, {}, {}, 0, 0, x.to(at::kFloat)), Error);
  EXPECT_THROW(softmax_bf16_rows(x, 1.0, at::zeros({4, 2}), at::zeros({4, 2}), 2, 2, x), Error);
  EXPECT_THROW(softmax_bf16_rows(x, 1.0, at::zeros({4, 2}), {}, 2, 3, x), Error);
  EXPECT_NO_THROW(softmax_bf16_rows(x, 1.0, at::zeros({4, 2}), at::zeros({4, 3}), 2, 3, x));
}

}  // namespace
}  // namespace nephroseg
