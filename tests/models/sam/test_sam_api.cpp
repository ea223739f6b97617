// SAM API tests: parameter names/shapes equal the official checkpoints' keys for
// vit_b/l/h, config parsing, and clear errors for bad checkpoints and bad prompts.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "models/sam/internal.h"
#include "nephroseg/checkpoint/state_dict.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/threads.h"
#include "nephroseg/sam/sam.h"
#include "support/golden.h"

namespace nephroseg::sam {
namespace {

using nephroseg::test::shared_path;

// The tiny config of golden/models/sam_tiny.json, spelled out so these tests run
// without the shared folder.
SamConfig tiny_config() {
  SamConfig c;
  c.name = "tiny";
  c.img_size = 160;
  c.encoder_embed_dim = 48;
  c.encoder_depth = 4;
  c.encoder_num_heads = 3;
  c.encoder_global_attn_indexes = {1, 3};
  c.window_size = 4;
  c.prompt_embed_dim = 64;
  c.decoder_mlp_dim = 128;
  c.iou_head_hidden_dim = 64;
  return c;
}

using nephroseg::test::error_of;  // tests/support/golden.h

class SamKeys : public ::testing::TestWithParam<std::string> {};

TEST_P(SamKeys, ParameterNamesAndShapesEqualOfficialCheckpoint) {
  NEPHRO_REQUIRE_SHARED("golden/models/full_state_dict_keys.json");
  std::ifstream in(shared_path("golden/models/full_state_dict_keys.json"));
  const nlohmann::json all = nlohmann::json::parse(in);
  const std::string type = GetParam();
  const nlohmann::json& expected = all.at("sam_" + type);

  c10::InferenceMode guard;  // no autograd bookkeeping while building big models
  const auto model = SamModel::random(SamConfig::preset(type));
  const checkpoint::StateDict sd = checkpoint::state_dict_of(internal::module(*model));

  std::map<std::string, std::vector<int64_t>> actual;
  for (const auto& key : sd.keys()) actual[key] = sd.at(key).sizes().vec();
  std::map<std::string, std::vector<int64_t>> wanted;
  for (const auto& item : expected.items()) wanted[item.key()] = item.value().get<std::vector<int64_t>>();
  EXPECT_EQ(actual.size(), wanted.size());
  for (const auto& [key, shape] : wanted) {
    auto it = actual.find(key);
    if (it == actual.end()) {
      ADD_FAILURE() << type << ": missing key " << key;
    } else {
      EXPECT_EQ(it->second, shape) << type << ": shape of " << key;
    }
  }
  for (const auto& [key, shape] : actual) {
    EXPECT_TRUE(wanted.count(key)) << type << ": unexpected key " << key;
  }
}

INSTANTIATE_TEST_SUITE_P(Presets, SamKeys, ::testing::Values("vit_b", "vit_l", "vit_h"));

TEST(SamConfigTest, PresetsAndDerivedSizes) {
  EXPECT_EQ(SamConfig::vit_b().grid_size(), 64);
  EXPECT_EQ(SamConfig::vit_b().low_res_size(), 256);
  EXPECT_EQ(SamConfig::vit_h().encoder_embed_dim, 1280);
  EXPECT_EQ(SamConfig::medsam().preprocess, SamPreprocess::kMedSam);
  EXPECT_EQ(SamConfig::medsam().encoder_embed_dim, 768);
  EXPECT_NE(error_of([] { SamConfig::preset("vit_x"); }).find("vit_x"), std::string::npos);
  EXPECT_EQ(tiny_config().grid_size(), 10);
  EXPECT_EQ(tiny_config().low_res_size(), 40);
}

TEST(SamConfigTest, FromJsonAcceptsGoldenFileAndBareObject) {
  NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.json");
  const SamConfig c = SamConfig::from_json(shared_path("golden/models/sam_tiny.json"));
  EXPECT_EQ(c.img_size, 160);
  EXPECT_EQ(c.encoder_global_attn_indexes, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(c.prompt_embed_dim, 64);

  const std::string dir = nephroseg::test::temp_dir("sam_cfg");
  std::ofstream(dir + "/bare.json") << R"({"img_size": 320, "preprocess": "medsam"})";
  const SamConfig b = SamConfig::from_json(dir + "/bare.json");
  EXPECT_EQ(b.img_size, 320);
  EXPECT_EQ(b.preprocess, SamPreprocess::kMedSam);
  std::ofstream(dir + "/typo.json") << R"({"img_sise": 320})";
  EXPECT_NE(error_of([&] { SamConfig::from_json(dir + "/typo.json"); }).find("img_sise"),
            std::string::npos);
}

TEST(SamCheckpoint, WrongCheckpointListsKeys) {
  NEPHRO_REQUIRE_SHARED("golden/models/dinov2_tiny.pth");
  const std::string msg = error_of(
      [] { SamModel::load(shared_path("golden/models/dinov2_tiny.pth"), tiny_config()); });
  ASSERT_FALSE(msg.empty()) << "loading a DINOv2 checkpoint into SAM must fail";
  EXPECT_NE(msg.find("image_encoder.pos_embed"), std::string::npos) << msg;  // missing
  EXPECT_NE(msg.find("cls_token"), std::string::npos) << msg;                // unexpected
}

TEST(SamCheckpoint, TinyCheckpointDoesNotFitVitB) {
  NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.pth");
  const std::string msg =
      error_of([] { SamModel::load(shared_path("golden/models/sam_tiny.pth"), SamConfig::vit_b()); });
  EXPECT_NE(msg.find("image_encoder.pos_embed"), std::string::npos) << msg;  // shape mismatch
  EXPECT_NE(error_of([] { SamModel::load("/nonexistent/sam.pth", SamConfig::vit_b()); })
                .find("/nonexistent/sam.pth"),
            std::string::npos);
}

class SamPromptErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    configure_threads(2);
    model_ = SamModel::random(tiny_config(), 7);
    image_ = at::randint(0, 256, {30, 50, 3}, at::kByte);
    emb_ = model_->encode(image_);
  }
  std::shared_ptr<SamModel> model_;
  at::Tensor image_;
  ImageEmbedding emb_;
};

TEST_F(SamPromptErrors, ValidPromptsGiveShapes) {
  EXPECT_EQ(emb_.embedding.sizes(), (at::IntArrayRef{1, 64, 10, 10}));
  EXPECT_EQ(emb_.input_size, (std::array<int64_t, 2>{96, 160}));
  SamPrompt p;
  p.points = {{10.f, 5.f}, {50.f, 30.f}};  // the bottom-right corner is inside
  p.labels = {1, 0};
  p.multimask = true;
  SamResult r = model_->predict(emb_, p);
  EXPECT_EQ(r.masks.sizes(), (at::IntArrayRef{3, 30, 50}));
  EXPECT_EQ(r.masks.scalar_type(), at::kBool);
  EXPECT_EQ(r.iou.sizes(), (at::IntArrayRef{3}));
  EXPECT_EQ(r.low_res_logits.sizes(), (at::IntArrayRef{3, 40, 40}));
  EXPECT_TRUE(r.masks.equal(r.mask_logits > 0));
  // Mask-only prompt from a previous result.
  SamPrompt m;
  m.mask_input = r.low_res_logits[r.best_index()].unsqueeze(0);
  EXPECT_EQ(model_->predict(emb_, m).masks.sizes(), (at::IntArrayRef{1, 30, 50}));
  // Grey image and batch of boxes.
  const ImageEmbedding grey = model_->encode(image_.select(2, 0));
  const SamResult b = model_->predict_boxes(grey, at::tensor({0.f, 0.f, 20.f, 20.f, 5.f, 5.f, 45.f, 25.f}).view({2, 4}),
                                            /*multimask=*/false);
  EXPECT_EQ(b.masks.sizes(), (at::IntArrayRef{2, 1, 30, 50}));
  EXPECT_EQ(b.iou.sizes(), (at::IntArrayRef{2, 1}));
}

TEST_F(SamPromptErrors, BadPromptsAreRejected) {
  SamPrompt none;
  EXPECT_NE(error_of([&] { model_->predict(emb_, none); }).find("no prompt"), std::string::npos);

  SamPrompt outside;
  outside.points = {{51.f, 5.f}};
  outside.labels = {1};
  EXPECT_NE(error_of([&] { model_->predict(emb_, outside); }).find("outside the image"),
            std::string::npos);

  SamPrompt negative;
  negative.points = {{-1.f, 5.f}};
  negative.labels = {1};
  EXPECT_NE(error_of([&] { model_->predict(emb_, negative); }).find("outside"), std::string::npos);

  SamPrompt bad_label;
  bad_label.points = {{1.f, 5.f}};
  bad_label.labels = {2};
  EXPECT_NE(error_of([&] { model_->predict(emb_, bad_label); }).find("label"), std::string::npos);

  SamPrompt count;
  count.points = {{1.f, 5.f}};
  EXPECT_NE(error_of([&] { model_->predict(emb_, count); }).find("label"), std::string::npos);

  SamPrompt box;
  box.box = std::array<float, 4>{10.f, 10.f, 5.f, 20.f};
  EXPECT_NE(error_of([&] { model_->predict(emb_, box); }).find("x0 <= x1"), std::string::npos);
  box.box = std::array<float, 4>{10.f, 10.f, 60.f, 20.f};
  EXPECT_NE(error_of([&] { model_->predict(emb_, box); }).find("outside"), std::string::npos);

  SamPrompt mask;
  mask.mask_input = at::zeros({1, 32, 32});
  EXPECT_NE(error_of([&] { model_->predict(emb_, mask); }).find("mask_input"), std::string::npos);

  EXPECT_NE(error_of([&] { model_->predict(ImageEmbedding{}, box); }).find("embedding"),
            std::string::npos);
  EXPECT_NE(error_of([&] { model_->encode(at::zeros({10, 10, 4}, at::kByte)); }).find("[H, W, 3]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { model_->encode(at::zeros({10, 10, 3})); }).find("uint8"),
            std::string::npos);
}

TEST(SamMedSam, BoxOnlyAndProbabilityThreshold) {
  configure_threads(2);
  SamConfig c = tiny_config();
  c.preprocess = SamPreprocess::kMedSam;
  const auto model = SamModel::random(c, 3);
  const at::Tensor image = at::randint(0, 256, {37, 61, 3}, at::kByte);
  const ImageEmbedding e = model->encode(image);
  EXPECT_EQ(e.input_size, (std::array<int64_t, 2>{160, 160}));
  SamPrompt p;
  p.box = std::array<float, 4>{5.f, 5.f, 40.f, 30.f};
  const SamResult r = model->predict(e, p);
  EXPECT_EQ(r.masks.sizes(), (at::IntArrayRef{1, 37, 61}));
  EXPECT_TRUE(r.masks.equal(r.mask_logits > 0));
  SamPrompt pts;
  pts.points = {{3.f, 3.f}};
  pts.labels = {1};
  EXPECT_NE(error_of([&] { model->predict(e, pts); }).find("MedSAM"), std::string::npos);
  // Min-max normalisation: the encoder input spans exactly [0, 1].
  c10::InferenceMode guard;
  const at::Tensor input = model_input(internal::module(*model), resize_for_model(image, c));
  EXPECT_EQ(input.sizes(), (at::IntArrayRef{1, 3, 160, 160}));
  EXPECT_FLOAT_EQ(input.min().item<float>(), 0.f);
  EXPECT_FLOAT_EQ(input.max().item<float>(), 1.f);
}

}  // namespace
}  // namespace nephroseg::sam
