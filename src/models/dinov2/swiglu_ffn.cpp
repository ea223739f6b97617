#include "models/dinov2/swiglu_ffn.h"

#include <ATen/ATen.h>

#include "core/module_init.h"

namespace nephroseg::dinov2 {

// Ref: dinov2/layers/swiglu_ffn.py::SwiGLUFFNFused.__init__ (int() truncates; the
// sizes are positive so integer arithmetic gives the same value).
int64_t swiglu_hidden(int64_t hidden_features) {
  return (hidden_features * 2 / 3 + 7) / 8 * 8;
}

SwiGLUFFNFusedImpl::SwiGLUFFNFusedImpl(const SwiGLUFFNFusedOptions& options) {
  const int64_t hidden = swiglu_hidden(options.hidden_features);
  w12_ = register_module("w12", make_linear(options.in_features, 2 * hidden, options.bias));
  w3_ = register_module("w3", make_linear(hidden, options.out_features, options.bias));
}

// Ref: dinov2/layers/swiglu_ffn.py::SwiGLUFFN.forward
at::Tensor SwiGLUFFNFusedImpl::forward(const at::Tensor& x) {
  at::Tensor x12 = w12_->forward(x);         // [B, N, 2*Hs]
  auto halves = x12.chunk(2, /*dim=*/-1);    // gate (first half), value
  at::Tensor hidden = at::silu(halves[0]) * halves[1];  // [B, N, Hs]
  return w3_->forward(hidden);               // [B, N, out]
}

}  // namespace nephroseg::dinov2
