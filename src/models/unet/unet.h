// src/models/unet/unet.h: the plain UNet that GlomSAM uses as its Rough Mask
// Generator (internal module header).
//
// Registration order and names follow the reference (`ups` before `downs`), so the
// state_dict keys equal the official RoughMaskGenerator file:
//   ups.{0,2,4,6}.{weight,bias}         ConvTranspose2d(2w -> w, k2, s2)
//   ups.{1,3,5,7}.conv.{0,1,3,4}.*      DoubleConv(2w -> w)
//   downs.{0..3}.conv.{0,1,3,4}.*       DoubleConv
//   bottleneck.conv.*, final_conv.*
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>

#include <cstdint>
#include <vector>

namespace nephroseg::models {

struct UNetOptions {
  int64_t in_channels = 3;
  int64_t out_channels = 1;
  std::vector<int64_t> features{64, 128, 256, 512};

  static UNetOptions official() { return UNetOptions{}; }
  /// The golden tiny width [4, 8, 16, 32].
  static UNetOptions tiny() { return UNetOptions{3, 1, {4, 8, 16, 32}}; }
  /// Input sides must be divisible by this (2^number of pooling stages).
  int64_t size_divisor() const { return int64_t{1} << features.size(); }
};

// Ref: GlomSAM utils.py::DoubleConv -- (conv3x3 with bias -> BN -> ReLU) x 2
class DoubleConvImpl : public torch::nn::Module {
 public:
  DoubleConvImpl(int64_t in_channels, int64_t out_channels);
  at::Tensor forward(const at::Tensor& x);

  torch::nn::Sequential conv{nullptr};
};
TORCH_MODULE(DoubleConv);

/// Intermediate outputs, for parity tests.
struct UNetTrace {
  std::vector<at::Tensor> down;  // stage outputs before pooling (the skips)
  at::Tensor bottleneck;
  std::vector<at::Tensor> up;    // ups[i] outputs: even = transposed conv, odd = DoubleConv
  at::Tensor logits;
};

// Ref: GlomSAM utils.py::UNet
class UNetImpl : public torch::nn::Module {
 public:
  explicit UNetImpl(const UNetOptions& options = UNetOptions::official());

  /// [B, in, H, W] (H, W divisible by 2^len(features)) -> logits [B, out, H, W].
  at::Tensor forward(const at::Tensor& x);
  UNetTrace forward_trace(const at::Tensor& x);

  const UNetOptions& options() const { return options_; }

  torch::nn::ModuleList ups{nullptr};
  torch::nn::ModuleList downs{nullptr};
  DoubleConv bottleneck{nullptr};
  torch::nn::Conv2d final_conv{nullptr};

 private:
  UNetOptions options_;
};
TORCH_MODULE(UNet);

}  // namespace nephroseg::models
