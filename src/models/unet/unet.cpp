// Ref: GlomSAM utils.py (UNet, DoubleConv)
#include "models/unet/unet.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>

#include "nephroseg/core/error.h"

namespace nephroseg::models {

DoubleConvImpl::DoubleConvImpl(int64_t in_channels, int64_t out_channels) {
  auto conv3 = [](int64_t in, int64_t out) {
    return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(1).padding(1).bias(true));
  };
  conv = register_module(
      "conv", torch::nn::Sequential(conv3(in_channels, out_channels),
                                    torch::nn::BatchNorm2d(out_channels), torch::nn::ReLU(),
                                    conv3(out_channels, out_channels),
                                    torch::nn::BatchNorm2d(out_channels), torch::nn::ReLU()));
}

at::Tensor DoubleConvImpl::forward(const at::Tensor& x) { return conv->forward(x); }

UNetImpl::UNetImpl(const UNetOptions& options) : options_(options) {
  NEPHRO_CHECK(!options.features.empty(), "UNet: `features` must not be empty");
  ups = register_module("ups", torch::nn::ModuleList());
  downs = register_module("downs", torch::nn::ModuleList());
  int64_t in = options.in_channels;
  for (int64_t f : options.features) {
    downs->push_back(DoubleConv(in, f));
    in = f;
  }
  for (auto it = options.features.rbegin(); it != options.features.rend(); ++it) {
    const int64_t f = *it;
    ups->push_back(torch::nn::ConvTranspose2d(
        torch::nn::ConvTranspose2dOptions(2 * f, f, 2).stride(2)));
    ups->push_back(DoubleConv(2 * f, f));
  }
  bottleneck = register_module("bottleneck",
                               DoubleConv(options.features.back(), options.features.back() * 2));
  final_conv = register_module(
      "final_conv",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(options.features.front(), options.out_channels, 1)));
}

UNetTrace UNetImpl::forward_trace(const at::Tensor& x) {
  const int64_t div = options_.size_divisor();
  NEPHRO_CHECK(x.dim() == 4 && x.size(1) == options_.in_channels,
               "UNet: expected input [B, ", options_.in_channels, ", H, W], got ", x.sizes());
  NEPHRO_CHECK(x.size(2) % div == 0 && x.size(3) % div == 0, "UNet: input size ", x.size(2),
               "x", x.size(3), " must be divisible by ", div);
  UNetTrace t;
  at::Tensor h = x;
  for (const auto& down : *downs) {
    h = down->as<DoubleConvImpl>()->forward(h);
    t.down.push_back(h);
    h = at::max_pool2d(h, {2, 2}, {2, 2});
  }
  h = bottleneck(h);
  t.bottleneck = h;
  const size_t n = t.down.size();
  for (size_t i = 0; i < ups->size(); i += 2) {
    h = ups[i]->as<torch::nn::ConvTranspose2dImpl>()->forward(h);  // [B, w, 2h, 2w]
    t.up.push_back(h);
    const at::Tensor& skip = t.down[n - 1 - i / 2];
    h = ups[i + 1]->as<DoubleConvImpl>()->forward(at::cat({skip, h}, 1));  // skip first
    t.up.push_back(h);
  }
  t.logits = final_conv(h);
  return t;
}

at::Tensor UNetImpl::forward(const at::Tensor& x) { return forward_trace(x).logits; }

}  // namespace nephroseg::models
