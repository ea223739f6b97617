#include "core/linear.h"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/quantized/PackedParams.h>
#include <c10/core/GradMode.h>

#include <vector>

#include "nephroseg/core/error.h"
#include "nephroseg/core/memory.h"

namespace nephroseg {

struct LinearImpl::Int8Weights {
  c10::intrusive_ptr<LinearPackedParamsBase> packed;
};

at::Tensor LinearImpl::forward(const at::Tensor& x) {
  switch (precision_) {
    case Precision::kBf16: {
      const at::Tensor xb = x.scalar_type() == at::kBFloat16 ? x : x.to(at::kBFloat16);
      if (xb.dim() < 3 || !bias.defined()) return at::linear(xb, weight, bias);
      // at::linear on a [..., in] bf16 input is a matmul and a separate bias pass over
      // the output; one addmm on the flattened rows measured ~25% faster (the bias is
      // added inside the GEMM, before the one rounding to bf16).
      std::vector<int64_t> sizes = xb.sizes().vec();
      sizes.back() = weight.size(0);
      return at::addmm(bias, xb.reshape({-1, xb.size(-1)}), weight.t()).view(sizes);
    }
    case Precision::kInt8:
      return int8_->packed->apply_dynamic(x.scalar_type() == at::kFloat ? x : x.to(at::kFloat),
                                          /*reduce_range=*/false);
    default:
      return torch::nn::LinearImpl::forward(x);
  }
}

at::ScalarType LinearImpl::attention_dtype() const {
  if (precision_ == Precision::kBf16) return at::kBFloat16;
  if (precision_ == Precision::kInt8 && cpu_features().native_bf16()) return at::kBFloat16;
  return at::kFloat;
}

at::Tensor LinearImpl::forward_for_attention(const at::Tensor& x) {
  at::Tensor y = forward(x);
  const at::ScalarType t = attention_dtype();
  return y.scalar_type() == t ? y : y.to(t);
}

void LinearImpl::set_precision(Precision precision) {
  NEPHRO_CHECK(precision != Precision::kAuto,
               "internal: Linear::set_precision needs a resolved precision, not auto");
  if (precision == precision_) return;
  NEPHRO_CHECK(precision_ == Precision::kFp32, "internal: Linear precision changes only from fp32 (now ",
               precision_names().name(precision_), ", asked ", precision_names().name(precision), ")");
  c10::NoGradGuard no_grad;
  weight.set_requires_grad(false);
  if (bias.defined()) bias.set_requires_grad(false);
  if (precision == Precision::kBf16) {
    weight.set_data(weight.to(at::kBFloat16));
    if (bias.defined()) bias.set_data(bias.to(at::kBFloat16));
  } else if (precision == Precision::kInt8) {
    static auto prepack =
        c10::Dispatcher::singleton()
            .findSchemaOrThrow("quantized::linear_prepack", "")
            .typed<c10::intrusive_ptr<LinearPackedParamsBase>(at::Tensor, c10::optional<at::Tensor>)>();
    const at::Tensor w = weight.contiguous();
    // Symmetric per-output-channel scales; an all-zero row keeps a tiny positive scale.
    // Without VNNI the weights keep 7 bits (int8_weight_bits): oneDNN's u8 x s8 pairs
    // would otherwise saturate their 16-bit sums.
    const double qmax = int8_weight_bits() == 8 ? 127.0 : 63.0;
    const at::Tensor scales = (w.abs().amax(1) / qmax).clamp_min(1e-12).to(at::kDouble);
    const at::Tensor zero_points = at::zeros({w.size(0)}, at::kLong);
    const at::Tensor qw = at::quantize_per_channel(w, scales, zero_points, 0, at::kQInt8);
    int8_ = std::make_shared<Int8Weights>();
    int8_->packed = prepack.call(qw, bias.defined() ? c10::optional<at::Tensor>(bias.contiguous())
                                                    : c10::nullopt);
    // The packed copy is all the forward needs; keep the shape-only parameters.
    weight.set_data(at::empty({0}, at::kFloat));
  }
  precision_ = precision;
}

int64_t set_linear_precision(torch::nn::Module& root, Precision precision) {
  int64_t n = 0;
  for (const auto& m : root.modules(/*include_self=*/true)) {
    if (auto* lin = dynamic_cast<LinearImpl*>(m.get())) {
      lin->set_precision(precision);
      // Hand each layer's freed float32 weight back at once (the tensor cache would
      // keep it idle, and the converted copies are of other sizes): a model converted
      // right after loading then peaks at about one checkpoint, not 1.5-2.3x.
      if (precision != Precision::kFp32) release_free_memory();
      ++n;
    }
  }
  return n;
}

Precision apply_model_precision(torch::nn::Module& root, Precision requested) {
  Precision p = requested;
  if (p == Precision::kAuto) p = resolve_precision(p);
  if (p == Precision::kInt8) enable_int8_engine();
  set_linear_precision(root, p);
  return p;
}

}  // namespace nephroseg
