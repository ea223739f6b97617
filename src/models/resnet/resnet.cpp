// Ref: torchvision/models/resnet.py (ResNet, BasicBlock, Bottleneck, _make_layer)
#include "models/resnet/resnet.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>

#include "core/module_init.h"
#include "nephroseg/core/error.h"

namespace nephroseg::models {

namespace {

torch::nn::Conv2d conv3x3(int64_t in, int64_t out, int64_t stride, int64_t dilation) {
  return make_conv2d(torch::nn::Conv2dOptions(in, out, 3)
                         .stride(stride)
                         .padding(dilation)
                         .dilation(dilation)
                         .bias(false));
}

torch::nn::Conv2d conv1x1(int64_t in, int64_t out, int64_t stride = 1) {
  return make_conv2d(torch::nn::Conv2dOptions(in, out, 1).stride(stride).bias(false));
}

torch::nn::Sequential make_downsample(int64_t in, int64_t out, int64_t stride) {
  // Registered as downsample.0 (conv) and downsample.1 (BN), as in torchvision.
  return torch::nn::Sequential(conv1x1(in, out, stride), torch::nn::BatchNorm2d(out));
}

}  // namespace

ResNetOptions ResNetOptions::resnet18() {
  ResNetOptions o;
  o.block = ResNetBlock::kBasic;
  o.layers = {2, 2, 2, 2};
  return o;
}
ResNetOptions ResNetOptions::resnet34() {
  ResNetOptions o;
  o.block = ResNetBlock::kBasic;
  o.layers = {3, 4, 6, 3};
  return o;
}
ResNetOptions ResNetOptions::resnet50() {
  ResNetOptions o;
  o.layers = {3, 4, 6, 3};
  return o;
}
ResNetOptions ResNetOptions::resnet101() { return ResNetOptions{}; }
ResNetOptions ResNetOptions::resnet152() {
  ResNetOptions o;
  o.layers = {3, 8, 36, 3};
  return o;
}

BasicBlockImpl::BasicBlockImpl(int64_t inplanes, int64_t planes, int64_t stride,
                               int64_t dilation, bool with_downsample) {
  NEPHRO_CHECK(dilation == 1, "ResNet: BasicBlock does not support dilation > 1");
  conv1 = register_module("conv1", conv3x3(inplanes, planes, stride, 1));
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(planes));
  conv2 = register_module("conv2", conv3x3(planes, planes, 1, 1));
  bn2 = register_module("bn2", torch::nn::BatchNorm2d(planes));
  if (with_downsample) {
    downsample = register_module("downsample", make_downsample(inplanes, planes, stride));
  }
}

at::Tensor BasicBlockImpl::forward(const at::Tensor& x) {
  at::Tensor out = at::relu(bn1(conv1(x)));
  out = bn2(conv2(out));
  at::Tensor identity = downsample ? downsample->forward(x) : x;
  return at::relu(out + identity);
}

BottleneckImpl::BottleneckImpl(int64_t inplanes, int64_t planes, int64_t stride,
                               int64_t dilation, bool with_downsample) {
  const int64_t width = planes;  // groups 1, base_width 64
  conv1 = register_module("conv1", conv1x1(inplanes, width));
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(width));
  conv2 = register_module("conv2", conv3x3(width, width, stride, dilation));
  bn2 = register_module("bn2", torch::nn::BatchNorm2d(width));
  conv3 = register_module("conv3", conv1x1(width, planes * 4));
  bn3 = register_module("bn3", torch::nn::BatchNorm2d(planes * 4));
  if (with_downsample) {
    downsample = register_module("downsample", make_downsample(inplanes, planes * 4, stride));
  }
}

at::Tensor BottleneckImpl::forward(const at::Tensor& x) {
  at::Tensor out = at::relu(bn1(conv1(x)));
  out = at::relu(bn2(conv2(out)));
  out = bn3(conv3(out));
  at::Tensor identity = downsample ? downsample->forward(x) : x;
  return at::relu(out + identity);
}

ResNetImpl::ResNetImpl(const ResNetOptions& options) : options_(options) {
  NEPHRO_CHECK(options.layers.size() == 4, "ResNet: `layers` needs 4 entries, got ",
               options.layers.size());
  NEPHRO_CHECK(options.stem_width > 0, "ResNet: stem_width must be positive");
  inplanes_ = options.stem_width;
  conv1 = register_module(
      "conv1", make_conv2d(torch::nn::Conv2dOptions(options.in_channels, inplanes_, 7)
                               .stride(2)
                               .padding(3)
                               .bias(false)));
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(inplanes_));
  for (int i = 0; i < 4; ++i) {
    const int64_t planes = options.stem_width << i;
    const int64_t stride = i == 0 ? 1 : 2;
    const bool dilate = i == 0 ? false : options.replace_stride_with_dilation[i - 1];
    layer[i] = register_module("layer" + std::to_string(i + 1),
                               make_layer(planes, options.layers[i], stride, dilate));
  }
  if (options.num_classes > 0) {
    fc = register_module("fc", torch::nn::Linear(options.out_channels(), options.num_classes));
  }
  // torchvision init: kaiming-normal (fan_out, relu) convs, BN weight 1 / bias 0.
  // Skipped when a checkpoint will overwrite every weight (core/module_init.h).
  if (SkipInitGuard::active()) return;
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* conv = m->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(conv->weight, /*a=*/0.0, torch::kFanOut, torch::kReLU);
    }
  }
}

torch::nn::Sequential ResNetImpl::make_layer(int64_t planes, int64_t blocks, int64_t stride,
                                             bool dilate) {
  const int64_t expansion = options_.expansion();
  const int64_t previous_dilation = dilation_;
  if (dilate) {
    dilation_ *= stride;
    stride = 1;
  }
  const bool need_downsample = stride != 1 || inplanes_ != planes * expansion;
  torch::nn::Sequential seq;
  auto add_block = [&](int64_t inplanes, int64_t s, int64_t d, bool ds) {
    if (options_.block == ResNetBlock::kBottleneck) {
      seq->push_back(Bottleneck(inplanes, planes, s, d, ds));
    } else {
      seq->push_back(BasicBlock(inplanes, planes, s, d, ds));
    }
  };
  add_block(inplanes_, stride, previous_dilation, need_downsample);
  inplanes_ = planes * expansion;
  for (int64_t b = 1; b < blocks; ++b) add_block(inplanes_, 1, dilation_, false);
  return seq;
}

ResNetStages ResNetImpl::forward_stages(const at::Tensor& x) {
  NEPHRO_CHECK(x.dim() == 4 && x.size(1) == options_.in_channels,
               "ResNet: expected input [B, ", options_.in_channels, ", H, W], got ", x.sizes());
  ResNetStages s;
  s.stem = at::relu(bn1(conv1(x)));  // [B, s, H/2, W/2]
  s.maxpool = at::max_pool2d(s.stem, {3, 3}, {2, 2}, {1, 1});  // [B, s, H/4, W/4]
  at::Tensor h = s.maxpool;
  for (int i = 0; i < 4; ++i) {
    h = layer[i]->forward(h);
    s.layers[i] = h;
  }
  return s;
}

at::Tensor ResNetImpl::forward_features(const at::Tensor& x) {
  at::Tensor h = at::relu(bn1(conv1(x)));
  h = at::max_pool2d(h, {3, 3}, {2, 2}, {1, 1});
  for (int i = 0; i < 4; ++i) h = layer[i]->forward(h);
  return h;  // [B, 32s, H/32, W/32]
}

at::Tensor ResNetImpl::forward(const at::Tensor& x) {
  NEPHRO_CHECK(fc, "ResNet: built with num_classes = 0, so it has no classifier");
  at::Tensor h = forward_features(x);
  h = at::adaptive_avg_pool2d(h, {1, 1}).flatten(1);  // [B, 32s]
  return fc(h);
}

}  // namespace nephroseg::models
