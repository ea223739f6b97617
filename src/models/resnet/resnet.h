// src/models/resnet/resnet.h: torchvision-compatible ResNet (internal module header).
//
// Children are registered under torchvision's attribute names (conv1, bn1, layer1..4,
// fc; blocks conv1/bn1/conv2/bn2/conv3/bn3/downsample), so named_parameters() keys equal
// the keys of the official torchvision .pth files (resnet18 ... resnet152).
// The stem width is a parameter (torchvision fixes it at 64) so tiny test trunks can
// share the code: stage planes are s, 2s, 4s, 8s.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <array>
#include <cstdint>
#include <vector>

namespace nephroseg::models {

enum class ResNetBlock { kBasic, kBottleneck };

struct ResNetOptions {
  ResNetBlock block = ResNetBlock::kBottleneck;
  std::vector<int64_t> layers{3, 4, 23, 3};
  int64_t stem_width = 64;      // planes of layer1 (torchvision: 64)
  int64_t num_classes = 1000;   // 0 = no `fc` child at all
  int64_t in_channels = 3;
  /// torchvision's replace_stride_with_dilation for layer2..layer4.
  std::array<bool, 3> replace_stride_with_dilation{false, false, false};

  static ResNetOptions resnet18();
  static ResNetOptions resnet34();
  static ResNetOptions resnet50();
  static ResNetOptions resnet101();
  static ResNetOptions resnet152();

  int64_t expansion() const { return block == ResNetBlock::kBottleneck ? 4 : 1; }
  /// Channels of layer L (1..4) output.
  int64_t stage_channels(int stage) const {
    return stem_width * (int64_t{1} << (stage - 1)) * expansion();
  }
  int64_t out_channels() const { return stage_channels(4); }
};

// Ref: torchvision/models/resnet.py::BasicBlock
class BasicBlockImpl : public torch::nn::Module {
 public:
  BasicBlockImpl(int64_t inplanes, int64_t planes, int64_t stride, int64_t dilation,
                 bool with_downsample);
  at::Tensor forward(const at::Tensor& x);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(BasicBlock);

// Ref: torchvision/models/resnet.py::Bottleneck ("v1.5": stride on conv2)
class BottleneckImpl : public torch::nn::Module {
 public:
  BottleneckImpl(int64_t inplanes, int64_t planes, int64_t stride, int64_t dilation,
                 bool with_downsample);
  at::Tensor forward(const at::Tensor& x);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(Bottleneck);

/// Outputs of every stage (for parity tests and feature pyramids).
struct ResNetStages {
  at::Tensor stem;     // relu(bn1(conv1(x)))  [B, s, H/2, W/2]
  at::Tensor maxpool;  // [B, s, H/4, W/4]
  std::array<at::Tensor, 4> layers;  // layer1..4: [B, 4s.., H/4 .. H/32]
};

// Ref: torchvision/models/resnet.py::ResNet
class ResNetImpl : public torch::nn::Module {
 public:
  explicit ResNetImpl(const ResNetOptions& options = ResNetOptions::resnet101());

  /// Classification forward: [B, 3, H, W] -> logits [B, num_classes].
  at::Tensor forward(const at::Tensor& x);
  /// Trunk without avgpool/fc: [B, 3, H, W] -> layer4 output [B, 32s, H/32, W/32].
  at::Tensor forward_features(const at::Tensor& x);
  ResNetStages forward_stages(const at::Tensor& x);

  const ResNetOptions& options() const { return options_; }

  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  std::array<torch::nn::Sequential, 4> layer{nullptr, nullptr, nullptr, nullptr};
  torch::nn::Linear fc{nullptr};

 private:
  torch::nn::Sequential make_layer(int64_t planes, int64_t blocks, int64_t stride, bool dilate);

  ResNetOptions options_;
  int64_t inplanes_ = 64;
  int64_t dilation_ = 1;
};
TORCH_MODULE(ResNet);

}  // namespace nephroseg::models
