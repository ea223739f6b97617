// Parity of the whole tiny GlomSAM (golden/glomsam/full_model, test.py path), the
// prompt-generator case (both token orders) and the two AdamW training steps
// (golden/glomsam/train_step), plus the full-size key list (full_size_keys.json).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <torch/optim/adamw.h>

#include <fstream>

#include "models/glomsam/glomsam.h"
#include "nephroseg/checkpoint/pth.h"
#include "nephroseg/checkpoint/state_dict.h"
#include "nephroseg/glomsam/glomsam.h"
#include "nephroseg/train/losses.h"
#include "nephroseg/train/metrics.h"
#include "support/golden.h"

namespace nephroseg::models::glomsam {
namespace {

using nephroseg::glomsam::GlomSamConfig;
using test::load_ref_pt;
using test::shared_path;

constexpr double kAtol = 1e-5;

void expect_close(const at::Tensor& got, const std::map<std::string, at::Tensor>& ref,
                  const std::string& key, double atol = kAtol) {
  ASSERT_TRUE(ref.count(key)) << "golden lacks " << key;
  if (std::getenv("NEPHROSEG_PARITY_REPORT")) {  // per-tensor numbers for reports
    std::printf("  parity %-52s max|d| %.3g\n", key.c_str(), test::max_abs_diff(got, ref.at(key)));
  }
  EXPECT_TRUE(test::tensors_close(got, ref.at(key), atol, 0.0, key));
}

nlohmann::ordered_json read_json(const std::string& rel) {
  std::ifstream in(shared_path(rel));
  return nlohmann::ordered_json::parse(in);  // keeps the file's key order
}

GlomSam load_tiny(const std::string& pth) {
  GlomSam m(GlomSamConfig::tiny());
  checkpoint::bind_state_dict(*m, checkpoint::load_state_dict(shared_path(pth)), pth);
  return m;
}

TEST(GlomSamPromptGeneratorCase, BothTokenOrders) {
  NEPHRO_REQUIRE_SHARED("golden/glomsam/prompt_generator.pth");
  auto ref = load_ref_pt(shared_path("golden/glomsam/prompt_generator.ref.pt"));
  auto sd = checkpoint::load_state_dict(shared_path("golden/glomsam/prompt_generator.pth"));
  for (const char* order : {"reference", "per_token"}) {
    GlomSamConfig cfg = GlomSamConfig::tiny();
    cfg.token_order = std::string(order) == "reference" ? nephroseg::glomsam::TokenOrder::kReference
                                                        : nephroseg::glomsam::TokenOrder::kPerToken;
    GlomImageEncoder enc(cfg);
    checkpoint::bind_state_dict(*enc, sd, "prompt_generator.pth");
    EXPECT_EQ(reference_state_dict(*enc).keys(), sd.keys());
    enc->eval();
    at::NoGradGuard no_grad;
    EncoderTrace t;
    enc->forward_traced(ref.at("in.image"), &t);
    const std::string p = std::string(order) + ".";
    expect_close(t.patch_embed, ref, "patch_embed");
    expect_close(t.pos_added, ref, "pos_added");
    expect_close(t.prompt.fft_image, ref, "fft.image", 1e-7);
    expect_close(t.prompt.handcrafted_conv, ref, "handcrafted.conv");
    expect_close(t.prompt.handcrafted_tokens, ref, "handcrafted.tokens");
    expect_close(t.prompt.embedding_tokens, ref, p + "embedding.tokens");
    for (int i = 0; i < 4; ++i) {
      expect_close(t.prompt.prompts[i], ref, p + "prompt." + std::to_string(i));
      expect_close(t.blocks[i], ref, p + "block." + std::to_string(i));
    }
    expect_close(t.neck, ref, p + "neck");
    expect_close(t.cnn_adapter, ref, "cnn.adapter");
    expect_close(t.output, ref, p + "output");
  }
}

TEST(GlomSamFullModel, TestPathParity) {
  NEPHRO_REQUIRE_SHARED("golden/glomsam/full_model.pth");
  auto ref = load_ref_pt(shared_path("golden/glomsam/full_model.ref.pt"));
  GlomSam m = load_tiny("golden/glomsam/full_model.pth");
  EXPECT_EQ(reference_state_dict(*m).keys(),
            checkpoint::load_state_dict(shared_path("golden/glomsam/full_model.pth")).keys());
  m->eval();
  at::NoGradGuard no_grad;
  // The box as MyDataset derives it from the GT with the recorded jitter.
  const at::Tensor gt = ref.at("in.gt_mask").to(at::kLong);
  const at::Tensor jit = ref.at("in.box_jitter");
  for (int64_t b = 0; b < 2; ++b) {
    auto raw = nephroseg::glomsam::box_from_mask(gt[b][0]);
    auto box = nephroseg::glomsam::box_from_mask(
        gt[b][0], {jit[b][0].item<int64_t>(), jit[b][1].item<int64_t>(), jit[b][2].item<int64_t>(),
                   jit[b][3].item<int64_t>()});
    for (int k = 0; k < 4; ++k) {
      EXPECT_EQ(raw[k], ref.at("in.box_raw")[b][k].item<float>());
      EXPECT_EQ(box[k], ref.at("in.box")[b][k].item<float>());
    }
  }
  // uint8 * float32(1/255) reproduces the stored model input.
  at::Tensor img = ref.at("in.image_u8").permute({0, 3, 1, 2}).to(at::kFloat) * (1.0f / 255.0f);
  EXPECT_EQ(test::max_abs_diff(img, ref.at("in.image")), 0.0);
  GlomSamTrace t;
  at::Tensor logits = m->forward_traced(ref.at("in.image"), ref.at("in.box"), &t);
  expect_close(t.unet_input, ref, "unet_input");
  expect_close(t.unet_logits, ref, "unet_logits");
  expect_close(t.rough_mask, ref, "rough_mask");
  expect_close(t.encoder.neck, ref, "neck");
  expect_close(t.encoder.cnn_adapter, ref, "cnn_adapter");
  expect_close(t.encoder.output, ref, "image_embedding");
  expect_close(t.sparse_embeddings, ref, "sparse_embeddings");
  expect_close(t.dense_embeddings, ref, "dense_embeddings");
  expect_close(t.dense_pe, ref, "dense_pe");
  expect_close(t.decoder.tokens_out, ref, "transformer.tokens_out");
  expect_close(t.decoder.image_out, ref, "transformer.image_out");
  expect_close(t.decoder.upscaled_embedding, ref, "upscaled_embedding");
  expect_close(t.low_res_logits, ref, "low_res_logits");
  expect_close(t.iou_pred, ref, "iou_pred");
  expect_close(logits, ref, "logits");
  nephroseg::train::MetricAccumulator acc;
  acc.add_batch(logits, gt);
  auto mt = acc.result();
  EXPECT_EQ(mt.accuracy_percent, ref.at("metrics.accuracy_percent").item<double>());
  EXPECT_EQ(mt.iou, ref.at("metrics.iou").item<double>());
  EXPECT_EQ(mt.dice, ref.at("metrics.dice").item<double>());
  EXPECT_EQ(mt.recall, ref.at("metrics.recall").item<double>());
}

class TrainStepParity : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainStepParity, TwoAdamWSteps) {
  NEPHRO_REQUIRE_SHARED("golden/glomsam/train_step.ref.pt");
  const std::string mode = GetParam();
  auto ref = load_ref_pt(shared_path("golden/glomsam/train_step.ref.pt"));
  auto in = load_ref_pt(shared_path("golden/glomsam/full_model.ref.pt"));
  auto js = read_json("golden/glomsam/train_step.json");
  GlomSam m = load_tiny("golden/glomsam/full_model.pth");
  m->freeze(/*freeze_unet=*/mode == "spec");
  m->train();
  torch::optim::AdamW opt(m->unique_parameters(),
                          torch::optim::AdamWOptions(1e-4).weight_decay(0.01));
  auto sd = checkpoint::state_dict_of(*m);
  auto params = m->unique_named_parameters();
  const at::Tensor image = in.at("in.image");
  const at::Tensor gt = in.at("in.gt_mask").to(at::kLong);
  const at::Tensor box = in.at("in.box");
  nephroseg::train::GlomSamLossOptions lo;
  lo.boundary = nephroseg::train::BoundaryConvention::kGlomSamBroadcast;
  const std::string p = mode + ".";
  double max_grad = 0, max_param = 0, max_loss = 0;
  for (int step = 1; step <= 2; ++step) {
    const std::string s = p + "step" + std::to_string(step) + ".";
    opt.zero_grad();
    at::Tensor logits = m->forward(image, box);
    auto loss = nephroseg::train::glomsam_loss(logits, gt, lo);
    EXPECT_NEAR(loss.total.item<double>(), ref.at(s + "loss").item<double>(), 1e-5) << s;
    EXPECT_NEAR(loss.bce.item<double>(), ref.at(s + "loss.bce").item<double>(), 1e-5) << s;
    EXPECT_NEAR(loss.dice.item<double>(), ref.at(s + "loss.dice").item<double>(), 1e-5) << s;
    EXPECT_NEAR(loss.bdou.item<double>(), ref.at(s + "loss.bdou").item<double>(), 1e-5) << s;
    max_loss = std::max(max_loss, std::abs(loss.total.item<double>() - ref.at(s + "loss").item<double>()));
    loss.total.backward();
    if (step == 1) {
      expect_close(logits.detach(), ref, s + "logits");
      for (const auto& [key, want] : ref) {
        if (key.rfind(s + "grad.", 0) == 0) {
          const std::string name = key.substr((s + "grad.").size());
          ASSERT_TRUE(sd.at(name).grad().defined()) << name << " has no gradient";
          EXPECT_TRUE(test::tensors_close(sd.at(name).grad(), want, 1e-5, 0.0, key));
          max_grad = std::max(max_grad, test::max_abs_diff(sd.at(name).grad(), want));
        }
        if (key.rfind(s + "buffer_after_forward.", 0) == 0) {
          const std::string name = key.substr((s + "buffer_after_forward.").size());
          EXPECT_TRUE(test::tensors_close(sd.at(name).to(at::kDouble), want.to(at::kDouble), 1e-5, 0.0, key));
        }
      }
      // Which parameters receive gradients: none / exactly zero / nonzero, by name.
      const auto& mj = js["modes"][mode];
      for (const auto& name : mj["params_with_no_grad(None)"]) {
        EXPECT_FALSE(sd.at(name.get<std::string>()).grad().defined()) << name;
      }
      for (const auto& name : mj["params_with_exactly_zero_grad"]) {
        const at::Tensor& g = sd.at(name.get<std::string>()).grad();
        ASSERT_TRUE(g.defined()) << name;
        EXPECT_EQ(g.abs().max().item<float>(), 0.0f) << name;
      }
      for (const auto& name : mj["params_with_nonzero_grad"]) {
        const at::Tensor& g = sd.at(name.get<std::string>()).grad();
        ASSERT_TRUE(g.defined()) << name;
        EXPECT_GT(g.abs().max().item<float>(), 0.0f) << name;
      }
      // Group gradient norms.
      for (const auto& [key, want] : ref) {
        const std::string gp = p + "group_grad_norm.";
        if (key.rfind(gp, 0) != 0) continue;
        const std::string group = key.substr(gp.size());
        double sq = 0.0;
        for (const auto& [name, t] : params) {
          const bool in_group = group == "image_encoder"
                                    ? (name.rfind("image_encoder.", 0) == 0 &&
                                       name.find("prompt_generator") == std::string::npos &&
                                       name.find("cnn_branch") == std::string::npos &&
                                       name.find("fusion_module") == std::string::npos)
                                    : name.rfind(group + ".", 0) == 0;
          if (in_group && t.grad().defined()) sq += t.grad().to(at::kDouble).pow(2).sum().item<double>();
        }
        EXPECT_NEAR(std::sqrt(sq), want.item<double>(), 1e-5 * std::max(1.0, want.item<double>())) << key;
      }
    }
    opt.step();
    for (const auto& [key, want] : ref) {
      if (key.rfind(s + "param_after.", 0) == 0) {
        const std::string name = key.substr((s + "param_after.").size());
        EXPECT_TRUE(test::tensors_close(sd.at(name), want, 1e-6, 0.0, key));
        max_param = std::max(max_param, test::max_abs_diff(sd.at(name), want));
      }
    }
  }
  std::printf("  train_step %s: max|d| loss %.3g, tracked grads %.3g, params after steps %.3g\n",
              mode.c_str(), max_loss, max_grad, max_param);
}

INSTANTIATE_TEST_SUITE_P(Modes, TrainStepParity, ::testing::Values("spec", "released"));

TEST(GlomSamFullSize, KeysAndShapesEqualTheReference) {
  NEPHRO_REQUIRE_SHARED("golden/glomsam/full_size_keys.json");
  auto js = read_json("golden/glomsam/full_size_keys.json");
  GlomSam m(GlomSamConfig::official());
  auto sd = reference_state_dict(*m);
  const auto& want = js["glomsam_state_dict"];
  ASSERT_EQ(sd.size(), want.size());
  size_t i = 0;
  for (auto it = want.begin(); it != want.end(); ++it, ++i) {
    EXPECT_EQ(sd.keys()[i], it.key()) << "position " << i;
    ASSERT_TRUE(sd.contains(it.key())) << it.key();
    std::vector<int64_t> shape = it.value()["shape"].get<std::vector<int64_t>>();
    EXPECT_EQ(sd.at(it.key()).sizes(), at::IntArrayRef(shape)) << it.key();
  }
  int64_t total = 0;
  for (const auto& p : m->unique_parameters()) total += p.numel();
  EXPECT_EQ(total, js["parameter_counts"]["total_unique_parameters"].get<int64_t>());
}

}  // namespace
}  // namespace nephroseg::models::glomsam
