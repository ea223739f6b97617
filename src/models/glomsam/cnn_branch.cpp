// Ref: GlomSAM segment_anything/modeling/cnn_branch.py (CNNBranch, SEBlock, FusionWithSE)
#include "models/glomsam/cnn_branch.h"

#include <ATen/ATen.h>

#include "nephroseg/core/error.h"

namespace nephroseg::models::glomsam {

namespace {
// nn.Sequential(*list(resnet.children())[:-2]) shares conv1 (0), bn1 (1), relu (2),
// maxpool (3) and layer1..4 (4..7) with the trunk. Only modules with state are listed.
class FeatureAliasesImpl : public torch::nn::Module {
 public:
  explicit FeatureAliasesImpl(ResNetImpl& trunk) {
    register_module("0", trunk.conv1);
    register_module("1", trunk.bn1);
    for (int i = 0; i < 4; ++i) register_module(std::to_string(4 + i), trunk.layer[i]);
  }
};

at::Tensor resize_bilinear(const at::Tensor& x, int64_t h, int64_t w) {
  return at::upsample_bilinear2d(x, {h, w}, /*align_corners=*/false);
}
}  // namespace

CnnBranchImpl::CnnBranchImpl(const CnnBranchOptions& options) : options_(options) {
  resnet101 = register_module("resnet101", ResNet(options.resnet));
  if (options.feature_aliases) {
    features = register_module("features", std::make_shared<FeatureAliasesImpl>(*resnet101));
  }
  adapt_conv = register_module(
      "adapt_conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(options.resnet.out_channels(),
                                                               options.out_chans, 1)));
}

at::Tensor CnnBranchImpl::forward(const at::Tensor& image) {
  return adapt_conv(resnet101->forward_features(image));  // [B, C, H/32, W/32]
}

CnnBranchTrace CnnBranchImpl::forward_trace(const at::Tensor& image) {
  CnnBranchTrace t;
  t.stages = resnet101->forward_stages(image);
  t.adapter = adapt_conv(t.stages.layers[3]);
  return t;
}

SeBlockImpl::SeBlockImpl(int64_t channels, int64_t reduction) {
  NEPHRO_CHECK(reduction > 0 && channels / reduction > 0, "SEBlock: channels ", channels,
               " / reduction ", reduction, " must be >= 1");
  fc1 = register_module("fc1", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, channels / reduction, 1)));
  fc2 = register_module("fc2", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels / reduction, channels, 1)));
}

at::Tensor SeBlockImpl::gate(const at::Tensor& x) {
  at::Tensor s = at::adaptive_avg_pool2d(x, {1, 1});  // [B, C, 1, 1]
  return at::sigmoid(fc2(at::relu(fc1(s))));
}

at::Tensor SeBlockImpl::forward(const at::Tensor& x) { return x * gate(x); }

FusionWithSeImpl::FusionWithSeImpl(int64_t vit_chans, int64_t cnn_chans, int64_t out_chans,
                                   int64_t reduction) {
  se_block = register_module("se_block", SeBlock(vit_chans + cnn_chans, reduction));
  conv = register_module(
      "conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(vit_chans + cnn_chans, out_chans, 1)));
}

at::Tensor FusionWithSeImpl::forward(const at::Tensor& vit, const at::Tensor& cnn) {
  at::Tensor up = resize_bilinear(cnn, vit.size(2), vit.size(3));  // [B, Cc, h, w]
  at::Tensor x = at::cat({vit, up}, 1);                             // [B, Cv+Cc, h, w]
  return conv(se_block(x));
}

FusionTrace FusionWithSeImpl::forward_trace(const at::Tensor& vit, const at::Tensor& cnn) {
  FusionTrace t;
  t.cnn_upsampled = resize_bilinear(cnn, vit.size(2), vit.size(3));
  t.concat = at::cat({vit, t.cnn_upsampled}, 1);
  t.se_pool = at::adaptive_avg_pool2d(t.concat, {1, 1});
  t.se_fc1_relu = at::relu(se_block->fc1(t.se_pool));
  t.se_gate = at::sigmoid(se_block->fc2(t.se_fc1_relu));
  t.se_out = t.concat * t.se_gate;
  t.output = conv(t.se_out);
  return t;
}

}  // namespace nephroseg::models::glomsam
