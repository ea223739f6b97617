// Parity of the DINOv2 port with facebookresearch/dinov2 on the three tiny golden
// models (MLP, reg4, SwiGLU): every tensor of the *.ref.pt files is compared.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "nephroseg/core/threads.h"
#include "nephroseg/dinov2/dinov2.h"
#include "support/golden.h"

namespace {

using nephroseg::dinov2::Dinov2Config;
using nephroseg::dinov2::Dinov2Model;
namespace nt = nephroseg::test;

// Same LibTorch ops as the reference: the spec's tolerance for this case.
constexpr double kAtol = 1e-5;

class Dinov2Parity : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { nephroseg::configure_threads(2); }
};

void expect_close(const at::Tensor& actual, const std::map<std::string, at::Tensor>& ref,
                  const std::string& key, const std::string& model) {
  auto it = ref.find(key);
  ASSERT_NE(it, ref.end()) << "golden file lacks " << key;
  const std::string name = model + " " + key;
  EXPECT_TENSOR_CLOSE(actual, it->second, kAtol, name);
  if (actual.sizes() == it->second.sizes()) {
    std::printf("[parity] %-52s max|diff| %.3g\n", name.c_str(),
                nt::max_abs_diff(actual, it->second));
  }
}

TEST_P(Dinov2Parity, EveryGoldenTensor) {
  const std::string model_name = GetParam();
  NEPHRO_REQUIRE_SHARED("golden/models/" + model_name + ".ref.pt");
  const std::string dir = nt::shared_path("golden/models");
  const Dinov2Config config = Dinov2Config::from_json(dir + "/" + model_name + ".json");
  auto model = Dinov2Model::load(dir + "/" + model_name + ".pth", config);
  const auto ref = nt::load_ref_pt(dir + "/" + model_name + ".ref.pt");

  int inputs = 0;
  for (const std::string x : {"x0", "x1", "x2"}) {
    const at::Tensor input = ref.at("in." + x);
    const int64_t grid_h = input.size(2) / 14, grid_w = input.size(3) / 14;
    expect_close(model->interpolate_pos_encoding(grid_h, grid_w), ref,
                 "debug." + x + ".pos_embed_used", model_name);
    expect_close(model->prepare_tokens(input), ref, "debug." + x + ".prepared_tokens",
                 model_name);

    const auto out = model->forward_features(input);
    EXPECT_EQ(out.grid_h, grid_h);
    EXPECT_EQ(out.grid_w, grid_w);
    const std::string o = "out." + x + ".";
    expect_close(out.x_norm_clstoken, ref, o + "x_norm_clstoken", model_name);
    expect_close(out.x_norm_regtokens, ref, o + "x_norm_regtokens", model_name);
    expect_close(out.x_norm_patchtokens, ref, o + "x_norm_patchtokens", model_name);
    expect_close(out.x_prenorm, ref, o + "x_prenorm", model_name);

    const auto layers = model->get_intermediate_layers(input, /*n=*/2, /*reshape=*/true,
                                                       /*norm=*/true);
    ASSERT_EQ(layers.size(), 2u);
    for (size_t i = 0; i < layers.size(); ++i) {
      const std::string k = o + "intermediate" + std::to_string(i);
      expect_close(layers[i].patch_tokens, ref, k + ".patch_nchw", model_name);
      expect_close(layers[i].cls_token, ref, k + ".cls", model_name);
    }
    ++inputs;
  }
  EXPECT_EQ(inputs, 3);
}

INSTANTIATE_TEST_SUITE_P(Golden, Dinov2Parity,
                         ::testing::Values("dinov2_tiny", "dinov2_tiny_reg4",
                                           "dinov2_tiny_swiglu"));

// Every golden entry must be covered by the test above (guards against new entries).
TEST(Dinov2ParityCoverage, GoldenFilesHoldOnlyCheckedEntries) {
  NEPHRO_REQUIRE_SHARED("golden/models/dinov2_tiny.ref.pt");
  const auto ref = nt::load_ref_pt(nt::shared_path("golden/models/dinov2_tiny.ref.pt"));
  int checked = 0;
  for (const auto& kv : ref) {
    const std::string& k = kv.first;
    const bool known = k.rfind("in.x", 0) == 0 || k.rfind("out.x", 0) == 0 ||
                       k.rfind("debug.x", 0) == 0;
    EXPECT_TRUE(known) << "unchecked golden entry " << k;
    ++checked;
  }
  // 3 inputs + 3 x (4 outputs + 4 intermediate + 2 debug).
  EXPECT_EQ(checked, 33);
}

}  // namespace
