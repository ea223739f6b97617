// src/models/glomsam/cnn_branch.h: GlomSAM's ResNet branch, SE block and fusion
// (internal module header). Spec: specs/glomsam.md §3.3-3.4, §10.
//
// Keys (prefix image_encoder.):
//   cnn_branch.resnet101.<torchvision keys, fc included>
//   cnn_branch.features.{0,1,4,5,6,7}.*  aliases of resnet101.{conv1,bn1,layer1..4}
//   cnn_branch.adapt_conv.{weight [C, 32s, 1, 1], bias}
//   fusion_module.se_block.fc1.{weight [2C/r, 2C, 1, 1], bias}, fc2.{weight [2C, 2C/r,1,1], bias}
//   fusion_module.conv.{weight [out, 2C, 1, 1], bias}
// The `features` aliases share the resnet101 modules: parameters() lists each such
// tensor twice, so optimisers must use unique_parameters() (glomsam.h).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>

#include <cstdint>

#include "models/resnet/resnet.h"

namespace nephroseg::models::glomsam {

struct CnnBranchOptions {
  ResNetOptions resnet = ResNetOptions::resnet101();
  int64_t out_chans = 256;  // adapter output (cnn_chans)
  /// Register cnn_branch.features.{0,1,4..7} aliases, as the official checkpoints do.
  bool feature_aliases = true;
};

/// cnn_branch outputs for parity tests.
struct CnnBranchTrace {
  ResNetStages stages;
  at::Tensor adapter;  // [B, C, H/32, W/32]
};

// Ref: GlomSAM cnn_branch.py::CNNBranch (ResNet trunk without avgpool/fc + 1x1 adapter)
class CnnBranchImpl : public torch::nn::Module {
 public:
  explicit CnnBranchImpl(const CnnBranchOptions& options = {});
  /// [B, 3, H, W] in [0,1] (no ImageNet normalisation) -> [B, C, H/32, W/32]
  at::Tensor forward(const at::Tensor& image);
  CnnBranchTrace forward_trace(const at::Tensor& image);

  ResNet resnet101{nullptr};
  std::shared_ptr<torch::nn::Module> features;  // alias container (may be null)
  torch::nn::Conv2d adapt_conv{nullptr};

 private:
  CnnBranchOptions options_;
};
TORCH_MODULE(CnnBranch);

// Ref: GlomSAM cnn_branch.py::SEBlock
class SeBlockImpl : public torch::nn::Module {
 public:
  SeBlockImpl(int64_t channels, int64_t reduction);
  /// [B, C, H, W] -> [B, C, H, W] (channels scaled by the gate)
  at::Tensor forward(const at::Tensor& x);
  /// The gate sigmoid(fc2(relu(fc1(avgpool(x))))) [B, C, 1, 1].
  at::Tensor gate(const at::Tensor& x);
  torch::nn::Conv2d fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(SeBlock);

struct FusionTrace {
  at::Tensor cnn_upsampled;  // [B, C, h, w]
  at::Tensor concat;         // [B, 2C, h, w], ViT first
  at::Tensor se_pool, se_fc1_relu, se_gate, se_out;
  at::Tensor output;         // [B, out, h, w]
};

// Ref: GlomSAM cnn_branch.py::FusionWithSE (built as FusionWithSE(cnn, cnn, out))
class FusionWithSeImpl : public torch::nn::Module {
 public:
  FusionWithSeImpl(int64_t vit_chans, int64_t cnn_chans, int64_t out_chans, int64_t reduction = 16);
  /// vit [B, Cv, h, w], cnn [B, Cc, h', w'] (resized bilinearly to h x w) -> [B, out, h, w]
  at::Tensor forward(const at::Tensor& vit, const at::Tensor& cnn);
  FusionTrace forward_trace(const at::Tensor& vit, const at::Tensor& cnn);

  SeBlock se_block{nullptr};
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(FusionWithSe);

}  // namespace nephroseg::models::glomsam
