// src/core/linear.h (internal): the Linear layer of the transformer encoders, which can
// switch once, after its float32 weights are bound, to bf16 or int8 inference.
//
// nephroseg::Linear is a torch::nn::Linear (same parameters "weight" and "bias", same
// state-dict keys, same fp32 forward, bit for bit), plus set_precision():
//   kBf16  weight and bias are converted to bfloat16 in place (the float32 copies are
//          freed); forward casts a float32 input to bf16 and returns bf16, so the
//          activations between two Linears (GELU, attention) stay in bf16 and a
//          residual add with a float32 tensor promotes back to float32.
//   kInt8  the weight is quantized per output channel (symmetric qint8; 7 bits on a
//          CPU without VNNI, int8_weight_bits()) and packed
//          for LibTorch's onednn engine (quantized::linear_prepack); the float32
//          weight is freed. forward is quantized::linear_dynamic: float32 in (a bf16
//          input is widened first), float32 out.
// Inference only: after set_precision(kBf16 | kInt8) the layer has no gradients.
//
//   Linear l = make_linear(768, 3072);   // core/module_init.h
//   bind_state_dict(...);                // float32 weights
//   set_linear_precision(encoder, Precision::kBf16);  // every Linear below `encoder`
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <memory>

#include "nephroseg/core/precision.h"

namespace nephroseg {

class LinearImpl : public torch::nn::LinearImpl {
 public:
  using torch::nn::LinearImpl::LinearImpl;

  /// x: [..., in_features] -> [..., out_features] (dtype: see the file comment).
  at::Tensor forward(const at::Tensor& x);

  /// Converts the weights once (kFp32: nothing to do; only from kFp32; kAuto is an
  /// error: resolve it first). kInt8 needs enable_int8_engine() to have run.
  void set_precision(Precision precision);
  Precision precision() const { return precision_; }
  /// The dtype of the attention core fed by this (qkv) layer: bf16 for kBf16, and
  /// for kInt8 where the CPU has native bf16 (its bf16 GEMMs and the fused bf16
  /// softmax outrun float32; the int8 output is rounded once to bf16); else float32.
  at::ScalarType attention_dtype() const;
  /// forward(x) in attention_dtype().
  at::Tensor forward_for_attention(const at::Tensor& x);

  struct Int8Weights;

 private:
  Precision precision_ = Precision::kFp32;
  std::shared_ptr<Int8Weights> int8_;
};
TORCH_MODULE(Linear);

/// set_precision on every nephroseg::Linear in `root`'s module tree; returns how many.
int64_t set_linear_precision(torch::nn::Module& root, Precision precision);

/// What the model facades call once after binding: kAuto is resolved for this CPU
/// (resolve_precision, unforced), kInt8 selects the onednn engine, then every Linear
/// under `root` is converted. Returns the precision applied (never kAuto).
Precision apply_model_precision(torch::nn::Module& root, Precision requested);

}  // namespace nephroseg
