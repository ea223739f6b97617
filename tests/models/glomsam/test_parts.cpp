// Parity of GlomSAM's building blocks with golden/glomsam: ResNet trunk + adapter + SE
// fusion (eval and train-mode BatchNorm), the UNet rough-mask generator, and the FFT
// high-pass / token parts of the prompt generator.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include <algorithm>
#include <torch/nn/module.h>

#include "models/glomsam/cnn_branch.h"
#include "models/glomsam/prompt_generator.h"
#include "models/resnet/resnet.h"
#include "models/unet/unet.h"
#include "nephroseg/checkpoint/pth.h"
#include "nephroseg/checkpoint/state_dict.h"
#include "support/golden.h"

namespace nephroseg::models {
namespace {

using test::load_ref_pt;
using test::shared_path;

// README tolerance for forward tensors (same LibTorch ops): 1e-5 absolute; deep
// BatchNorm trunks (layer4, |x| ~ 10) also get 1e-5 relative for thread/BLAS noise.
constexpr double kAtol = 1e-5;
constexpr double kRtol = 1e-5;

ResNetOptions tiny_resnet() {
  ResNetOptions o;
  o.layers = {2, 1, 1, 1};
  o.stem_width = 8;
  o.num_classes = 10;
  return o;
}

// The container the cnn_fusion golden was saved from: cnn_branch + fusion_module.
struct CnnFusionImpl : torch::nn::Module {
  CnnFusionImpl() {
    glomsam::CnnBranchOptions o;
    o.resnet = tiny_resnet();
    o.out_chans = 64;
    cnn_branch = register_module("cnn_branch", glomsam::CnnBranch(o));
    fusion_module = register_module("fusion_module", glomsam::FusionWithSe(64, 64, 64, 16));
  }
  glomsam::CnnBranch cnn_branch{nullptr};
  glomsam::FusionWithSe fusion_module{nullptr};
};
TORCH_MODULE(CnnFusion);

void expect_close(const at::Tensor& got, const std::map<std::string, at::Tensor>& ref,
                  const std::string& key, double atol = kAtol) {
  ASSERT_TRUE(ref.count(key)) << "golden lacks " << key;
  if (std::getenv("NEPHROSEG_PARITY_REPORT")) {  // per-tensor numbers for reports
    std::printf("  parity %-52s max|d| %.3g\n", key.c_str(), test::max_abs_diff(got, ref.at(key)));
  }
  EXPECT_TRUE(test::tensors_close(got, ref.at(key), atol, kRtol, key));
}

TEST(ResNetPresets, TorchvisionKeyListAndCounts) {
  ResNet r(ResNetOptions::resnet101());
  auto sd = checkpoint::state_dict_of(*r);
  EXPECT_EQ(sd.at("layer3.22.conv2.weight").sizes(), at::IntArrayRef({256, 256, 3, 3}));
  EXPECT_EQ(sd.at("layer4.0.downsample.0.weight").sizes(), at::IntArrayRef({2048, 1024, 1, 1}));
  int64_t n = 0;
  for (const auto& p : r->named_parameters()) {
    if (p.key().rfind("fc.", 0) != 0) n += p.value().numel();
  }
  EXPECT_EQ(n, 42500160);  // spec §3.3
  ResNet r18(ResNetOptions::resnet18());
  at::Tensor y = r18->forward(at::rand({1, 3, 64, 64}));
  EXPECT_EQ(y.sizes(), at::IntArrayRef({1, 1000}));
}

class CnnFusionParity : public ::testing::Test {
 protected:
  void SetUp() override {
    NEPHRO_REQUIRE_SHARED("golden/glomsam/cnn_fusion.pth");
    ref_ = load_ref_pt(shared_path("golden/glomsam/cnn_fusion.ref.pt"));
    sd_ = checkpoint::load_state_dict(shared_path("golden/glomsam/cnn_fusion.pth"));
    checkpoint::bind_state_dict(*model_, sd_, "cnn_fusion.pth");
  }
  void run(bool train, const std::string& prefix) {
    model_->train(train);
    at::NoGradGuard no_grad;
    const at::Tensor& image = ref_.at("in.image");
    auto cnn = model_->cnn_branch->forward_trace(image);
    expect_close(cnn.stages.stem, ref_, prefix + "stem");
    if (!train) expect_close(cnn.stages.maxpool, ref_, prefix + "maxpool");
    for (int i = 0; i < 4; ++i) {
      expect_close(cnn.stages.layers[i], ref_, prefix + "layer" + std::to_string(i + 1));
    }
    expect_close(cnn.adapter, ref_, prefix + "adapter");
    auto fused = model_->fusion_module->forward_trace(ref_.at("in.vit_features"), cnn.adapter);
    expect_close(fused.cnn_upsampled, ref_, prefix + "cnn_upsampled");
    expect_close(fused.se_gate, ref_, prefix + "se.gate");
    expect_close(fused.output, ref_, prefix + "output");
    if (!train) {
      expect_close(fused.concat, ref_, prefix + "concat");
      expect_close(fused.se_pool, ref_, prefix + "se.pool");
      expect_close(fused.se_fc1_relu, ref_, prefix + "se.fc1_relu");
      expect_close(fused.se_out, ref_, prefix + "se.out");
    }
    if (!train) {  // the public forward equals the traced one (eval: no BN update)
      at::Tensor direct = model_->fusion_module->forward(ref_.at("in.vit_features"),
                                                         model_->cnn_branch->forward(image));
      expect_close(direct, ref_, prefix + "output");
    }
  }
  CnnFusion model_;
  std::map<std::string, at::Tensor> ref_;
  checkpoint::StateDict sd_;
};

TEST_F(CnnFusionParity, AliasesShareTheTrunkTensors) {
  auto sd = checkpoint::state_dict_of(*model_);
  EXPECT_EQ(sd.size(), sd_.size());
  EXPECT_TRUE(sd.contains("cnn_branch.features.7.0.bn3.running_var"));
  EXPECT_EQ(sd.at("cnn_branch.features.4.0.conv1.weight").data_ptr(),
            sd.at("cnn_branch.resnet101.layer1.0.conv1.weight").data_ptr());
}

TEST_F(CnnFusionParity, EvalMode) { run(false, "eval."); }

TEST_F(CnnFusionParity, TrainModeBatchNormAndRunningStats) {
  run(true, "train.");
  // The trace above ran the trunk once in train mode; compare every BN buffer.
  auto sd = checkpoint::state_dict_of(*model_);
  int checked = 0;
  for (const auto& [key, want] : ref_) {
    const std::string prefix = "train.bn_after.";
    if (key.rfind(prefix, 0) != 0) continue;
    const std::string name = key.substr(prefix.size());
    ASSERT_TRUE(sd.contains(name)) << name;
    if (want.scalar_type() == at::kLong) {
      EXPECT_EQ(sd.at(name).item<int64_t>(), want.item<int64_t>()) << name;
    } else {
      EXPECT_TRUE(test::tensors_close(sd.at(name), want, kAtol, kRtol, name));
    }
    ++checked;
  }
  EXPECT_GT(checked, 30);
}

TEST(UNetParity, EvalAndTrain) {
  NEPHRO_REQUIRE_SHARED("golden/glomsam/unet.pth");
  auto ref = load_ref_pt(shared_path("golden/glomsam/unet.ref.pt"));
  UNet unet(UNetOptions::tiny());
  auto sd = checkpoint::load_state_dict(shared_path("golden/glomsam/unet.pth"));
  checkpoint::bind_state_dict(*unet, sd, "unet.pth");
  // Same key set as the file (ups registered before downs, as in the reference).
  auto own = checkpoint::state_dict_of(*unet).keys();
  auto file = sd.keys();
  EXPECT_EQ(own.front(), "ups.0.weight");
  std::sort(own.begin(), own.end());
  std::sort(file.begin(), file.end());
  EXPECT_EQ(own, file);
  at::NoGradGuard no_grad;
  unet->eval();
  at::Tensor in = at::upsample_bilinear2d(ref.at("in.image"), {32, 32}, /*align_corners=*/false);
  expect_close(in, ref, "eval.unet_input");
  UNetTrace t = unet->forward_trace(in);
  for (int i = 0; i < 4; ++i) expect_close(t.down[i], ref, "eval.down." + std::to_string(i));
  expect_close(t.bottleneck, ref, "eval.bottleneck");
  for (int i = 0; i < 8; ++i) expect_close(t.up[i], ref, "eval.up." + std::to_string(i));
  expect_close(t.logits, ref, "eval.logits");
  expect_close(at::upsample_bilinear2d(t.logits, {16, 16}, false), ref, "eval.rough_mask");
  unet->train();
  UNetTrace tt = unet->forward_trace(in);
  expect_close(tt.bottleneck, ref, "train.bottleneck");
  expect_close(tt.logits, ref, "train.logits");
  EXPECT_THROW(unet->forward(at::zeros({1, 3, 24, 24})), std::exception);
}

TEST(UNetOfficial, ParameterCount) {
  UNet unet(UNetOptions::official());
  int64_t n = 0;
  for (const auto& p : unet->parameters()) n += p.numel();
  EXPECT_EQ(n, 31043521);
}

TEST(FftHighPass, GoldenCasesBitExact) {
  NEPHRO_REQUIRE_SHARED("golden/glomsam/prompt_generator.ref.pt");
  auto ref = load_ref_pt(shared_path("golden/glomsam/prompt_generator.ref.pt"));
  expect_close(glomsam::fft_high_pass(ref.at("in.image"), 0.25), ref, "fft.image", 1e-7);
  for (const char* c : {"a", "b", "c"}) {
    const std::string k = std::string("fft_extra.") + c;
    at::Tensor out = glomsam::fft_high_pass(ref.at(k + ".in"), ref.at(k + ".rate").item<double>());
    expect_close(out, ref, k + ".out", 1e-7);
  }
}

TEST(FftHighPass, AnalyticProperties) {
  const int64_t n = 64;  // line = 16: frequencies |k| <= 15 removed, 16 half, > 16 kept
  at::Tensor grid = at::arange(n, at::kDouble);
  auto wave = [&](int64_t k) {
    return at::cos(grid * (2 * M_PI * k / n)).view({1, n}).expand({n, n}).to(at::kFloat)
        .view({1, 1, n, n}).contiguous();
  };
  EXPECT_LT(glomsam::fft_high_pass(at::full({1, 3, n, n}, 0.7f), 0.25).abs().max().item<float>(), 1e-6);
  EXPECT_LT(glomsam::fft_high_pass(wave(5), 0.25).abs().max().item<float>(), 1e-5);
  at::Tensor hi = wave(20);
  EXPECT_LT((glomsam::fft_high_pass(hi, 0.25) - hi.abs()).abs().max().item<float>(), 1e-5);
}

TEST(PromptGenerator, ParameterCountAndOrdersDiffer) {
  glomsam::PromptGenerator pg{glomsam::PromptGeneratorOptions{}};
  int64_t n = 0;
  for (const auto& p : pg->parameters()) n += p.numel();
  EXPECT_EQ(n, 63312);
  glomsam::PromptGeneratorOptions o;
  o.embed_dim = 48;
  o.depth = 2;
  o.scale_factor = 8;
  o.img_size = 64;
  glomsam::PromptGenerator small(o);
  at::NoGradGuard no_grad;
  at::Tensor p = at::randn({1, 4, 4, 48});
  at::Tensor a = small->init_embeddings(p);
  small->set_token_order(glomsam::EmbeddingTokenOrder::kPerToken);
  at::Tensor b = small->init_embeddings(p);
  EXPECT_GT((a - b).abs().max().item<float>(), 1e-3);
}

}  // namespace
}  // namespace nephroseg::models
