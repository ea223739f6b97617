#include "models/dinov2/attention.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>

#include "core/module_init.h"
#include "core/softmax_bf16.h"
#include "nephroseg/core/error.h"

namespace nephroseg::dinov2 {

AttentionImpl::AttentionImpl(const AttentionOptions& options) : options_(options) {
  NEPHRO_CHECK(options.num_heads > 0 && options.dim % options.num_heads == 0,
               "DINOv2 attention: dim ", options.dim, " is not divisible by num_heads ",
               options.num_heads);
  const int64_t head_dim = options.dim / options.num_heads;
  // Python computes head_dim**-0.5 in double and multiplies the float tensor by it.
  scale_ = std::pow(static_cast<double>(head_dim), -0.5);
  qkv_ = register_module("qkv", make_linear(options.dim, 3 * options.dim, options.qkv_bias));
  proj_ = register_module("proj", make_linear(options.dim, options.dim, options.proj_bias));
}

// Ref: dinov2/layers/attention.py::Attention.forward
// The reference, as run for the golden vectors, computes softmax((q * d^-0.5) k^T) v
// with exactly these ops; keeping their order keeps the results equal to ~1 ulp.
at::Tensor AttentionImpl::forward(const at::Tensor& x) {
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2);
  const int64_t heads = options_.num_heads;
  at::Tensor qkv = qkv_->forward_for_attention(x)                          // [B, N, 3C]
                       .reshape({B, N, 3, heads, C / heads})  // [B, N, 3, H, hd]
                       .permute({2, 0, 3, 1, 4});             // [3, B, H, N, hd]
  at::Tensor k = qkv.select(0, 1);                           // [B, H, N, hd]
  at::Tensor v = qkv.select(0, 2);                           // [B, H, N, hd]
  at::Tensor attn;
  if (qkv.scalar_type() == at::kBFloat16 && !at::GradMode::is_enabled()) {
    // bf16 inference: the scale and the softmax in one float32 pass over the bf16
    // logits (core/softmax_bf16.h); ATen's bf16 softmax was a third of the attention.
    attn = at::matmul(qkv.select(0, 0), k.transpose(-2, -1));  // [B, H, N, N], unscaled
    softmax_bf16_rows(attn, scale_, at::Tensor(), at::Tensor(), 0, 0, attn);
  } else {
    at::Tensor q = qkv.select(0, 0) * scale_;                  // [B, H, N, hd]
    attn = at::matmul(q, k.transpose(-2, -1));                 // [B, H, N, N]
    attn = at::softmax(attn, /*dim=*/-1);
  }
  at::Tensor out = at::matmul(attn, v)                       // [B, H, N, hd]
                       .transpose(1, 2)                      // [B, N, H, hd]
                       .reshape({B, N, C});                  // [B, N, C]
  return proj_->forward(out);
}

}  // namespace nephroseg::dinov2
