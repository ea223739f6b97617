#include "models/sam/image_encoder.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <torch/nn/modules/activation.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "core/module_init.h"
#include "core/softmax_bf16.h"
#include "nephroseg/core/error.h"

namespace nephroseg::sam {

// Ref: image_encoder.py::window_partition
std::pair<at::Tensor, std::pair<int64_t, int64_t>> window_partition(const at::Tensor& x,
                                                                    int64_t window_size) {
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  const int64_t pad_h = (window_size - H % window_size) % window_size;
  const int64_t pad_w = (window_size - W % window_size) % window_size;
  at::Tensor padded = x;
  if (pad_h > 0 || pad_w > 0) padded = at::constant_pad_nd(x, {0, 0, 0, pad_w, 0, pad_h}, 0.0);
  const int64_t Hp = H + pad_h, Wp = W + pad_w;
  at::Tensor windows =
      padded.view({B, Hp / window_size, window_size, Wp / window_size, window_size, C})
          .permute({0, 1, 3, 2, 4, 5})
          .contiguous()
          .view({-1, window_size, window_size, C});  // [B*nW, ws, ws, C]
  return {windows, {Hp, Wp}};
}

// Ref: image_encoder.py::window_unpartition
at::Tensor window_unpartition(const at::Tensor& windows, int64_t window_size,
                              std::pair<int64_t, int64_t> pad_hw,
                              std::pair<int64_t, int64_t> hw) {
  const auto [Hp, Wp] = pad_hw;
  const auto [H, W] = hw;
  const int64_t B = windows.size(0) / (Hp * Wp / window_size / window_size);
  at::Tensor x = windows.view({B, Hp / window_size, Wp / window_size, window_size, window_size, -1})
                     .permute({0, 1, 3, 2, 4, 5})
                     .contiguous()
                     .view({B, Hp, Wp, -1});  // [B, Hp, Wp, C]
  if (Hp > H || Wp > W) x = x.slice(1, 0, H).slice(2, 0, W).contiguous();  // [B, H, W, C]
  return x;
}

// Ref: image_encoder.py::get_rel_pos
at::Tensor get_rel_pos(int64_t q_size, int64_t k_size, const at::Tensor& rel_pos) {
  const int64_t max_rel_dist = 2 * std::max(q_size, k_size) - 1;
  at::Tensor table = rel_pos;  // [L, C]
  if (rel_pos.size(0) != max_rel_dist) {
    // Linear resize along the table length (align_corners=False).
    table = at::upsample_linear1d(rel_pos.reshape({1, rel_pos.size(0), -1}).permute({0, 2, 1}),
                                  {max_rel_dist}, /*align_corners=*/false)
                .reshape({-1, max_rel_dist})
                .permute({1, 0});  // [max_rel_dist, C]
  }
  const double q_ratio = std::max(static_cast<double>(k_size) / q_size, 1.0);
  const double k_ratio = std::max(static_cast<double>(q_size) / k_size, 1.0);
  at::Tensor q_coords = at::arange(q_size, at::kFloat).unsqueeze(1) * q_ratio;  // [q, 1]
  at::Tensor k_coords = at::arange(k_size, at::kFloat).unsqueeze(0) * k_ratio;  // [1, k]
  at::Tensor relative = (q_coords - k_coords) + (k_size - 1) * k_ratio;         // [q, k]
  return table.index_select(0, relative.to(at::kLong).flatten())
      .view({q_size, k_size, table.size(1)});  // [q, k, C]
}

// Ref: image_encoder.py::add_decomposed_rel_pos
at::Tensor add_decomposed_rel_pos(const at::Tensor& attn, const at::Tensor& q,
                                  const at::Tensor& rel_pos_h, const at::Tensor& rel_pos_w,
                                  std::pair<int64_t, int64_t> q_size,
                                  std::pair<int64_t, int64_t> k_size) {
  const auto [q_h, q_w] = q_size;
  const auto [k_h, k_w] = k_size;
  // In q's dtype: bf16 attention (core/linear.h) reads the float32 tables in bf16.
  const at::Tensor Rh = get_rel_pos(q_h, k_h, rel_pos_h).to(q.scalar_type());  // [q_h, k_h, C]
  const at::Tensor Rw = get_rel_pos(q_w, k_w, rel_pos_w).to(q.scalar_type());  // [q_w, k_w, C]
  const int64_t B = q.size(0), dim = q.size(2);
  const at::Tensor r_q = q.reshape({B, q_h, q_w, dim});
  const at::Tensor rel_h = at::einsum("bhwc,hkc->bhwk", {r_q, Rh});  // [B, q_h, q_w, k_h]
  const at::Tensor rel_w = at::einsum("bhwc,wkc->bhwk", {r_q, Rw});  // [B, q_h, q_w, k_w]
  return (attn.view({B, q_h, q_w, k_h, k_w}) + rel_h.unsqueeze(4) + rel_w.unsqueeze(3))
      .view({B, q_h * q_w, k_h * k_w});
}

RelPosAttentionImpl::RelPosAttentionImpl(int64_t dim, int64_t num_heads_, bool qkv_bias,
                                         bool use_rel_pos_,
                                         std::pair<int64_t, int64_t> input_size)
    : num_heads(num_heads_), use_rel_pos(use_rel_pos_) {
  const int64_t head_dim = dim / num_heads;
  scale = std::pow(static_cast<double>(head_dim), -0.5);
  qkv = register_module("qkv", make_linear(dim, dim * 3, qkv_bias));
  proj = register_module("proj", make_linear(dim, dim));
  if (use_rel_pos) {
    rel_pos_h = register_parameter("rel_pos_h", at::zeros({2 * input_size.first - 1, head_dim}));
    rel_pos_w = register_parameter("rel_pos_w", at::zeros({2 * input_size.second - 1, head_dim}));
  }
}

int64_t& chunked_attention_min_tokens() {
  static int64_t min_tokens = 1024;
  return min_tokens;
}

namespace {

// The decomposed rel-pos terms of add_decomposed_rel_pos (query size == key size
// == H x W), in float32 from q of any dtype: q: [BH, H*W, hd] ->
// rel_h [BH, H, W, H], rel_w [BH, H, W, W], contiguous.
std::pair<at::Tensor, at::Tensor> rel_pos_terms(const at::Tensor& q, const at::Tensor& rel_pos_h,
                                                const at::Tensor& rel_pos_w, int64_t H,
                                                int64_t W) {
  const at::Tensor Rh = get_rel_pos(H, H, rel_pos_h);  // [H, H, hd]
  const at::Tensor Rw = get_rel_pos(W, W, rel_pos_w);  // [W, W, hd]
  const at::Tensor r_q = q.to(at::kFloat).reshape({q.size(0), H, W, -1});
  return {at::einsum("bhwc,hkc->bhwk", {r_q, Rh}).contiguous(),
          at::einsum("bhwc,wkc->bhwk", {r_q, Rw}).contiguous()};
}

// Inference-only form of the attention core for large token counts (the global
// blocks: 4096 tokens, a 12 x 4096 x 4096 logit tensor in the reference). Each task
// takes one head and a band of query rows, so the logits stay in a small reused
// buffer: logits = (q * scale) k^T, then += rel_h, += rel_w (the reference's order),
// softmax in place, out = probs v. Same ops per element as the reference; only the
// GEMM blocking differs.
// q, k, v: [BH, N, hd]; rel_h: [BH, H, W, H]; rel_w: [BH, H, W, W] -> [BH, N, hd]
at::Tensor chunked_rel_pos_attention(const at::Tensor& q_scaled, const at::Tensor& k,
                                     const at::Tensor& v, const at::Tensor& rel_h,
                                     const at::Tensor& rel_w, int64_t H, int64_t W) {
  const int64_t BH = q_scaled.size(0), N = q_scaled.size(1), hd = q_scaled.size(2);
  // About 256 query rows per band (4 MiB of logits at N = 4096), whole image rows.
  const int64_t rows = std::max<int64_t>(1, 256 / W);
  const int64_t bands = (H + rows - 1) / rows;
  at::Tensor out = at::empty({BH, N, hd}, q_scaled.options());
  const at::Tensor kT = k.transpose(1, 2);  // [BH, hd, N]
  at::parallel_for(0, BH * bands, 1, [&](int64_t begin, int64_t end) {
    at::Tensor buffer = at::empty({rows * W, N}, q_scaled.options());
    for (int64_t t = begin; t < end; ++t) {
      const int64_t bh = t / bands;
      const int64_t r0 = (t % bands) * rows;
      const int64_t nr = std::min(rows, H - r0);
      const int64_t m = nr * W;
      at::Tensor logits = buffer.narrow(0, 0, m);                           // [m, N]
      at::mm_out(logits, q_scaled[bh].narrow(0, r0 * W, m), kT[bh]);
      at::Tensor grid = logits.view({nr, W, H, W});                         // [qh, qw, kh, kw]
      grid.add_(rel_h[bh].narrow(0, r0, nr).unsqueeze(3));                  // + [qh, qw, kh, 1]
      grid.add_(rel_w[bh].narrow(0, r0, nr).unsqueeze(2));                  // + [qh, qw, 1, kw]
      at::_softmax_out(logits, logits, -1, /*half_to_float=*/false);
      at::Tensor dst = out[bh].narrow(0, r0 * W, m);                        // [m, hd]
      at::mm_out(dst, logits, v[bh]);
    }
  });
  return out;
}

// The bf16 form of chunked_rel_pos_attention: the two products on bf16 GEMMs (AMX or
// avx512_bf16 through oneDNN), and scale, rel-pos terms and softmax fused in float32
// (core/softmax_bf16.h) on the bf16 logit band.
// q, k, v: [BH, N, hd] bf16 (q unscaled); rel_h, rel_w: float32 as above -> bf16.
at::Tensor chunked_rel_pos_attention_bf16(const at::Tensor& q, const at::Tensor& k,
                                          const at::Tensor& v, const at::Tensor& rel_h,
                                          const at::Tensor& rel_w, double scale, int64_t H,
                                          int64_t W) {
  const int64_t BH = q.size(0), N = q.size(1), hd = q.size(2);
  const int64_t rows = std::max<int64_t>(1, 256 / W);
  const int64_t bands = (H + rows - 1) / rows;
  at::Tensor out = at::empty({BH, N, hd}, q.options());
  const at::Tensor kT = k.transpose(1, 2);  // [BH, hd, N]
  const float* rh = rel_h.data_ptr<float>();
  const float* rw = rel_w.data_ptr<float>();
  at::parallel_for(0, BH * bands, 1, [&](int64_t begin, int64_t end) {
    at::Tensor buffer = at::empty({rows * W, N}, q.options());
    std::vector<float> scratch(static_cast<size_t>(N));
    for (int64_t t = begin; t < end; ++t) {
      const int64_t bh = t / bands;
      const int64_t r0 = (t % bands) * rows;
      const int64_t nr = std::min(rows, H - r0);
      const int64_t m = nr * W;
      const int64_t row0 = bh * N + r0 * W;  // first query row, over all heads
      at::Tensor logits = buffer.narrow(0, 0, m);  // [m, N]
      at::mm_out(logits, q[bh].narrow(0, r0 * W, m), kT[bh]);
      auto* lp = reinterpret_cast<uint16_t*>(logits.data_ptr());
      softmax_bf16_block(lp, N, lp, N, m, N, static_cast<float>(scale), rh + row0 * H, H,
                         rw + row0 * W, W, H, W, scratch.data());
      at::Tensor dst = out[bh].narrow(0, r0 * W, m);  // [m, hd]
      at::mm_out(dst, logits, v[bh]);
    }
  });
  return out;
}

}  // namespace

// Ref: image_encoder.py::Attention.forward
at::Tensor RelPosAttentionImpl::forward(const at::Tensor& x) {
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2);
  if (use_rel_pos && !at::GradMode::is_enabled() && H * W >= chunked_attention_min_tokens()) {
    return forward_chunked(x);
  }
  const at::Tensor qkv_all = qkv->forward_for_attention(x)
                                 .reshape({B, H * W, 3, num_heads, -1})
                                 .permute({2, 0, 3, 1, 4})  // [3, B, nH, N, hd]
                                 .reshape({3, B * num_heads, H * W, -1});  // [3, B*nH, N, hd]
  return proj->forward(attend(qkv_all, B, H, W));
}

// Ref: image_encoder.py::Attention.forward, from the split qkv to before proj.
at::Tensor RelPosAttentionImpl::attend(const at::Tensor& qkv_all, int64_t B, int64_t H,
                                       int64_t W) {
  const at::Tensor q = qkv_all[0], k = qkv_all[1], v = qkv_all[2];
  at::Tensor attn;
  if (q.scalar_type() == at::kBFloat16 && !at::GradMode::is_enabled()) {
    // bf16 inference: QK^T and AV on bf16 GEMMs, and the scale, the rel-pos terms and
    // the softmax in one float32 pass (core/softmax_bf16.h) instead of four bf16 ones.
    attn = at::matmul(q, k.transpose(-2, -1));  // [B*nH, N, N] bf16, unscaled
    at::Tensor rel_h, rel_w;
    if (use_rel_pos) std::tie(rel_h, rel_w) = rel_pos_terms(q, rel_pos_h, rel_pos_w, H, W);
    softmax_bf16_rows(attn, scale, rel_h, rel_w, H, W, attn);
  } else {
    attn = at::matmul(q * scale, k.transpose(-2, -1));  // [B*nH, N, N]
    if (use_rel_pos) attn = add_decomposed_rel_pos(attn, q, rel_pos_h, rel_pos_w, {H, W}, {H, W});
    attn = attn.softmax(-1);
  }
  return at::matmul(attn, v)
      .view({B, num_heads, H, W, -1})
      .permute({0, 2, 3, 1, 4})
      .reshape({B, H, W, -1});  // [B, H, W, C]
}

// Ref: image_encoder.py::Attention.forward (inference path, see
// chunked_rel_pos_attention)
at::Tensor RelPosAttentionImpl::forward_chunked(const at::Tensor& x) {
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2);
  const at::Tensor qkv_all = qkv->forward_for_attention(x)
                                 .reshape({B, H * W, 3, num_heads, -1})
                                 .permute({2, 0, 3, 1, 4})
                                 .reshape({3, B * num_heads, H * W, -1});  // [3, B*nH, N, hd]
  const at::Tensor q = qkv_all[0], k = qkv_all[1], v = qkv_all[2];
  const auto [rel_h, rel_w] = rel_pos_terms(q, rel_pos_h, rel_pos_w, H, W);  // float32
  const at::Tensor out = (q.scalar_type() == at::kBFloat16
                              ? chunked_rel_pos_attention_bf16(q, k, v, rel_h, rel_w, scale, H, W)
                              : chunked_rel_pos_attention(q * scale, k, v, rel_h, rel_w, H, W))
                             .view({B, num_heads, H, W, -1})
                             .permute({0, 2, 3, 1, 4})
                             .reshape({B, H, W, -1});  // [B, H, W, C]
  return proj->forward(out);
}

BlockImpl::BlockImpl(int64_t dim, int64_t num_heads, double mlp_ratio, bool qkv_bias, double eps,
                     bool use_rel_pos, int64_t window_size_,
                     std::pair<int64_t, int64_t> input_size)
    : window_size(window_size_) {
  norm1 = register_module(
      "norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(eps)));
  const auto attn_size =
      window_size == 0 ? input_size : std::make_pair(window_size, window_size);
  attn = register_module("attn", RelPosAttention(dim, num_heads, qkv_bias, use_rel_pos, attn_size));
  norm2 = register_module(
      "norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(eps)));
  mlp = register_module(
      "mlp", MLPBlock(dim, static_cast<int64_t>(dim * mlp_ratio), Activation::kGELU));
}

// Ref: image_encoder.py::Block.forward
at::Tensor BlockImpl::forward(const at::Tensor& x) {
  if (window_size > 0 && !at::GradMode::is_enabled()) return forward_windowed_inference(x);
  const at::Tensor shortcut = x;
  at::Tensor y = norm1->forward(x);
  const int64_t H = y.size(1), W = y.size(2);
  std::pair<int64_t, int64_t> pad_hw{H, W};
  if (window_size > 0) std::tie(y, pad_hw) = window_partition(y, window_size);
  y = attn->forward(y);
  if (window_size > 0) y = window_unpartition(y, window_size, pad_hw, {H, W});
  at::Tensor out = shortcut + y;
  return out + mlp->forward(norm2->forward(out));
}

// Windowed block without the padded tokens' projections. The reference pads the
// normalised input with zeros, so a padded token's qkv is exactly qkv.bias, and the
// padded tokens' outputs are cropped away after proj. Here qkv runs on the H x W
// real tokens, the padding is filled with the bias, and proj runs after the crop:
// 64 -> 70 padding costs the official models ~20% of their windowed-block qkv/proj.
at::Tensor BlockImpl::forward_windowed_inference(const at::Tensor& x) {
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2);
  const int64_t ws = window_size;
  const int64_t Hp = H + (ws - H % ws) % ws, Wp = W + (ws - W % ws) % ws;
  const at::Tensor qkv_real = attn->qkv->forward_for_attention(norm1->forward(x));  // [B, H, W, 3C]
  const int64_t C3 = qkv_real.size(3);
  at::Tensor qkv_pad = qkv_real;
  if (Hp != H || Wp != W) {
    qkv_pad = at::empty({B, Hp, Wp, C3}, qkv_real.options());
    if (attn->qkv->bias.defined()) {
      qkv_pad.copy_(attn->qkv->bias.view({1, 1, 1, C3}).expand_as(qkv_pad));
    } else {
      qkv_pad.zero_();
    }
    qkv_pad.slice(1, 0, H).slice(2, 0, W).copy_(qkv_real);  // [B, Hp, Wp, 3C]
  }
  const int64_t nw = B * (Hp / ws) * (Wp / ws);
  const int64_t nh = attn->num_heads;
  // Windows, then the reference's (3, B*nW*nH, ws*ws, hd) split in one copy.
  const at::Tensor qkv_all = qkv_pad.view({B, Hp / ws, ws, Wp / ws, ws, 3, nh, C3 / 3 / nh})
                                 .permute({5, 0, 1, 3, 6, 2, 4, 7})
                                 .reshape({3, nw * nh, ws * ws, C3 / 3 / nh});
  const at::Tensor windows = attn->attend(qkv_all, nw, ws, ws);                // [nW, ws, ws, C]
  const at::Tensor merged = window_unpartition(windows, ws, {Hp, Wp}, {H, W});  // [B, H, W, C]
  const at::Tensor out = x + attn->proj->forward(merged);
  return out + mlp->forward(norm2->forward(out));
}

PatchEmbedImpl::PatchEmbedImpl(int64_t patch_size, int64_t in_chans, int64_t embed_dim) {
  proj = register_module(
      "proj", make_conv2d(torch::nn::Conv2dOptions(in_chans, embed_dim, patch_size)
                              .stride(patch_size)));
}

at::Tensor PatchEmbedImpl::forward(const at::Tensor& x) {
  return proj->forward(x).permute({0, 2, 3, 1});  // [B, H/p, W/p, C]
}

ImageEncoderViTImpl::ImageEncoderViTImpl(const SamConfig& c) : img_size(c.img_size) {
  const int64_t grid = c.grid_size();
  const int64_t dim = c.encoder_embed_dim;
  patch_embed = register_module("patch_embed", PatchEmbed(c.patch_size, 3, dim));
  // Registered after patch_embed in Python, but own parameters come first in
  // state_dict order either way.
  pos_embed = register_parameter("pos_embed", at::zeros({1, grid, grid, dim}));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.encoder_depth; ++i) {
    const bool global =
        std::find(c.encoder_global_attn_indexes.begin(), c.encoder_global_attn_indexes.end(),
                  i) != c.encoder_global_attn_indexes.end();
    blocks->push_back(Block(dim, c.encoder_num_heads, c.mlp_ratio, c.qkv_bias, c.layernorm_eps,
                            c.use_rel_pos, global ? 0 : c.window_size, std::make_pair(grid, grid)));
  }
  const int64_t out = c.prompt_embed_dim;
  neck = register_module(
      "neck",
      torch::nn::Sequential(
          make_conv2d(torch::nn::Conv2dOptions(dim, out, 1).bias(false)),
          LayerNorm2d(out, 1e-6),
          make_conv2d(torch::nn::Conv2dOptions(out, out, 3).padding(1).bias(false)),
          LayerNorm2d(out, 1e-6)));
}

// Ref: image_encoder.py::ImageEncoderViT.forward
at::Tensor ImageEncoderViTImpl::forward(const at::Tensor& x, std::vector<at::Tensor>* debug) {
  at::Tensor h = patch_embed->forward(x);  // [B, grid, grid, C]
  if (debug) debug->push_back(h);
  // Contiguous (same values): the permuted patch-embed layout made block 0's
  // LayerNorm ~10x slower than the others'.
  h = (h + pos_embed).contiguous();
  for (const auto& blk : *blocks) {
    h = blk->as<BlockImpl>()->forward(h);
    if (debug) debug->push_back(h);
  }
  return neck->forward(h.permute({0, 3, 1, 2}));  // [B, out_chans, grid, grid]
}

}  // namespace nephroseg::sam
