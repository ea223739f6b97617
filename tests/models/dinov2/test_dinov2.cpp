// DINOv2 unit tests: the eight official presets build exactly the official state-dict
// layout (golden/models/full_state_dict_keys.json), and the API rejects bad input.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "nephroseg/core/error.h"
#include "nephroseg/dinov2/dinov2.h"
#include "support/golden.h"

namespace {

using nephroseg::Error;
using nephroseg::dinov2::Dinov2Config;
using nephroseg::dinov2::Dinov2Model;
namespace nt = nephroseg::test;

using KeyShapes = std::vector<std::pair<std::string, std::vector<int64_t>>>;

// Builds `config` with at most two blocks (the official ViT-g is 4.5 GB) and expands
// the block keys to the full depth. Only the block index differs between blocks, and
// the two built blocks are checked to have identical layouts.
KeyShapes key_shapes_for(Dinov2Config config) {
  const int64_t depth = config.depth;
  config.depth = std::min<int64_t>(depth, 2);
  const KeyShapes built = Dinov2Model::random(config)->state_dict_shapes();
  KeyShapes before, block0, block1, after;
  for (const auto& [key, shape] : built) {
    if (key.rfind("blocks.0.", 0) == 0) {
      block0.emplace_back(key.substr(9), shape);
    } else if (key.rfind("blocks.1.", 0) == 0) {
      block1.emplace_back(key.substr(9), shape);
    } else if (block0.empty()) {
      before.emplace_back(key, shape);
    } else {
      after.emplace_back(key, shape);
    }
  }
  EXPECT_EQ(block0, block1);
  KeyShapes full = before;
  for (int64_t i = 0; i < depth; ++i) {
    for (const auto& [key, shape] : block0) {
      full.emplace_back("blocks." + std::to_string(i) + "." + key, shape);
    }
  }
  full.insert(full.end(), after.begin(), after.end());
  return full;
}

TEST(Dinov2Presets, KeysAndShapesEqualOfficialCheckpoints) {
  NEPHRO_REQUIRE_SHARED("golden/models/full_state_dict_keys.json");
  std::ifstream in(nt::shared_path("golden/models/full_state_dict_keys.json"));
  // ordered_json keeps the file's key order (the state-dict order).
  const nlohmann::ordered_json all = nlohmann::ordered_json::parse(in);
  ASSERT_EQ(Dinov2Config::preset_names().size(), 8u);
  for (const std::string& name : Dinov2Config::preset_names()) {
    SCOPED_TRACE(name);
    const auto& expected_json = all.at("dinov2_" + name);
    KeyShapes expected;
    for (auto it = expected_json.begin(); it != expected_json.end(); ++it) {
      expected.emplace_back(it.key(), it.value().get<std::vector<int64_t>>());
    }
    const KeyShapes actual = key_shapes_for(Dinov2Config::preset(name));
    ASSERT_EQ(actual.size(), expected.size()) << name;
    for (size_t i = 0; i < actual.size(); ++i) {
      EXPECT_EQ(actual[i].first, expected[i].first) << name << " key #" << i;
      EXPECT_EQ(actual[i].second, expected[i].second) << name << " " << expected[i].first;
    }
  }
}

TEST(Dinov2Presets, FullDepthModelMatchesExpansion) {
  // vits14_reg4 is small enough to build at full depth: the truncated-and-expanded
  // layout used above must equal the real one.
  const Dinov2Config c = Dinov2Config::preset("dinov2_vits14_reg4");
  EXPECT_EQ(Dinov2Model::random(c)->state_dict_shapes(), key_shapes_for(c));
}

TEST(Dinov2Presets, HubHyperParameters) {
  const auto g = Dinov2Config::preset("vitg14");
  EXPECT_EQ(g.embed_dim, 1536);
  EXPECT_EQ(g.depth, 40);
  EXPECT_EQ(g.num_heads, 24);
  EXPECT_EQ(g.ffn_layer, "swiglufused");
  EXPECT_EQ(g.num_register_tokens, 0);
  EXPECT_DOUBLE_EQ(g.interpolate_offset, 0.1);
  EXPECT_FALSE(g.interpolate_antialias);
  const auto l4 = Dinov2Config::preset("vitl14_reg4");
  EXPECT_EQ(l4.num_register_tokens, 4);
  EXPECT_TRUE(l4.interpolate_antialias);
  EXPECT_DOUBLE_EQ(l4.interpolate_offset, 0.0);
  EXPECT_EQ(l4.pos_embed_grid(), 37);
  EXPECT_THROW(Dinov2Config::preset("vitx14"), Error);
  EXPECT_THROW(Dinov2Config::preset("vits16"), Error);
}

TEST(Dinov2Config, FromJsonAcceptsGoldenFileAndBareObject) {
  NEPHRO_REQUIRE_SHARED("golden/models/dinov2_tiny_swiglu.json");
  const auto c = Dinov2Config::from_json(nt::shared_path("golden/models/dinov2_tiny_swiglu.json"));
  EXPECT_EQ(c.img_size, 98);
  EXPECT_EQ(c.embed_dim, 48);
  EXPECT_EQ(c.depth, 3);
  EXPECT_EQ(c.num_heads, 3);
  EXPECT_EQ(c.ffn_layer, "swiglufused");

  const std::string dir = nt::temp_dir("dinov2_json");
  {
    std::ofstream(dir + "/bare.json") << R"({"embed_dim": 32, "depth": 2, "num_heads": 2,
        "img_size": 28, "num_register_tokens": 4, "interpolate_offset": 0.0})";
    std::ofstream(dir + "/unknown.json") << R"({"embed_dim": 32, "depth_typo": 2})";
    std::ofstream(dir + "/chunks.json") << R"({"block_chunks": 4})";
    std::ofstream(dir + "/heads.json") << R"({"embed_dim": 30, "num_heads": 4})";
    std::ofstream(dir + "/broken.json") << R"({"embed_dim": )";
  }
  const auto b = Dinov2Config::from_json(dir + "/bare.json");
  EXPECT_EQ(b.embed_dim, 32);
  EXPECT_EQ(b.num_register_tokens, 4);
  EXPECT_EQ(b.pos_embed_grid(), 2);
  EXPECT_THROW(Dinov2Config::from_json(dir + "/unknown.json"), Error);
  EXPECT_THROW(Dinov2Config::from_json(dir + "/chunks.json"), Error);
  EXPECT_THROW(Dinov2Config::from_json(dir + "/heads.json"), Error);
  EXPECT_THROW(Dinov2Config::from_json(dir + "/broken.json"), Error);
  EXPECT_THROW(Dinov2Config::from_json(dir + "/missing.json"), Error);
}

Dinov2Config tiny_config() {
  Dinov2Config c;
  c.img_size = 98;
  c.embed_dim = 48;
  c.depth = 3;
  c.num_heads = 3;
  return c;
}

using nephroseg::test::error_of;  // tests/support/golden.h

TEST(Dinov2Errors, BadImageSizesAndChannels) {
  auto model = Dinov2Model::random(tiny_config());
  std::string msg = error_of([&] { model->forward_features(at::zeros({1, 3, 97, 98})); });
  EXPECT_NE(msg.find("multiples of the patch size 14"), std::string::npos) << msg;
  msg = error_of([&] { model->forward_features(at::zeros({1, 1, 98, 98})); });
  EXPECT_NE(msg.find("channels"), std::string::npos) << msg;
  msg = error_of([&] { model->forward_features(at::zeros({3, 98, 98})); });
  EXPECT_FALSE(msg.empty());
  msg = error_of([&] { model->forward_features(at::zeros({1, 3, 98, 98}, at::kDouble)); });
  EXPECT_NE(msg.find("float32"), std::string::npos) << msg;
  EXPECT_THROW(model->get_intermediate_layers(at::zeros({1, 3, 28, 28}), /*n=*/4), Error);
  EXPECT_THROW(model->get_intermediate_layers_at(at::zeros({1, 3, 28, 28}), {3}), Error);
}

TEST(Dinov2Errors, PatchFeaturesSizeRules) {
  auto model = Dinov2Model::random(tiny_config());
  const at::Tensor odd = at::full({100, 98, 3}, 128, at::kByte);
  std::string msg = error_of([&] { model->patch_features(odd); });
  EXPECT_NE(msg.find("multiples of the patch size"), std::string::npos) << msg;
  EXPECT_THROW(model->patch_features(odd, /*size=*/100), Error);
  EXPECT_THROW(model->patch_features(at::zeros({28, 28, 1}, at::kByte)), Error);
  EXPECT_THROW(model->patch_features(at::zeros({28, 28, 3}, at::kFloat)), Error);

  const auto f = model->patch_features(odd, /*size=*/42);
  EXPECT_EQ(f.tokens.sizes(), (std::vector<int64_t>{9, 48}));
  EXPECT_EQ(f.grid_h, 3);
  EXPECT_EQ(f.grid_w, 3);
  const auto g = model->patch_features(at::full({28, 56, 3}, 7, at::kByte));
  EXPECT_EQ(f.tokens.scalar_type(), at::kFloat);
  EXPECT_EQ(g.grid_h, 2);
  EXPECT_EQ(g.grid_w, 4);
}

TEST(Dinov2Preprocess, ImageNetNormalisation) {
  auto model = Dinov2Model::random(tiny_config());
  at::Tensor image = at::zeros({14, 28, 3}, at::kByte);
  image.select(2, 0).fill_(255);  // R = 255, G = 0, B = 0 ... then B = 51 below
  image.select(2, 2).fill_(51);
  const at::Tensor x = model->preprocess(image);
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{1, 3, 14, 28}));
  EXPECT_NEAR(x[0][0][3][5].item<double>(), (1.0 - 0.485) / 0.229, 1e-5);
  EXPECT_NEAR(x[0][1][3][5].item<double>(), (0.0 - 0.456) / 0.224, 1e-5);
  EXPECT_NEAR(x[0][2][3][5].item<double>(), (0.2 - 0.406) / 0.225, 1e-5);
}

TEST(Dinov2Errors, WrongCheckpointNamesTheKeys) {
  NEPHRO_REQUIRE_SHARED("golden/models/dinov2_tiny.pth");
  const std::string pth = nt::shared_path("golden/models/dinov2_tiny.pth");
  // A reg4 config expects register_tokens, which the plain checkpoint lacks.
  Dinov2Config reg4 = tiny_config();
  reg4.num_register_tokens = 4;
  std::string msg = error_of([&] { Dinov2Model::load(pth, reg4); });
  EXPECT_NE(msg.find("register_tokens"), std::string::npos) << msg;
  EXPECT_NE(msg.find("holds a DINOv2 model with embed_dim 48, depth 3, MLP FFN, 0 register"),
            std::string::npos)
      << msg;
  // A SwiGLU config expects mlp.w12 / mlp.w3 instead of mlp.fc1 / mlp.fc2.
  Dinov2Config swiglu = tiny_config();
  swiglu.ffn_layer = "swiglufused";
  msg = error_of([&] { Dinov2Model::load(pth, swiglu); });
  EXPECT_NE(msg.find("mlp.w12"), std::string::npos) << msg;
  // Wrong width: shape mismatches.
  Dinov2Config wide = tiny_config();
  wide.embed_dim = 96;
  msg = error_of([&] { Dinov2Model::load(pth, wide); });
  EXPECT_NE(msg.find("cls_token"), std::string::npos) << msg;
  // Not a checkpoint at all.
  EXPECT_THROW(Dinov2Model::load(nt::shared_path("golden/models/dinov2_tiny.json"), tiny_config()),
               Error);
}

}  // namespace
