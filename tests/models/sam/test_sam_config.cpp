// SamConfig JSON round trip and strictness; SamModel::load leaves the global random
// generator alone, skips nothing the checkpoint holds, and reports BindError lists.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

#include "models/sam/internal.h"
#include "nephroseg/checkpoint/pth.h"
#include "nephroseg/checkpoint/state_dict.h"
#include "nephroseg/core/error.h"
#include "nephroseg/sam/sam.h"
#include "support/golden.h"

namespace nephroseg::sam {
namespace {

SamConfig small_config() {
  SamConfig c;
  c.name = "small";
  c.img_size = 64;
  c.encoder_embed_dim = 32;
  c.encoder_depth = 2;
  c.encoder_num_heads = 2;
  c.encoder_global_attn_indexes = {1};
  c.window_size = 2;
  c.prompt_embed_dim = 32;
  c.decoder_mlp_dim = 64;
  c.iou_head_hidden_dim = 32;
  return c;
}

using nephroseg::test::error_of;  // tests/support/golden.h

TEST(SamConfigJson, RoundTripKeepsEveryField) {
  SamConfig c = small_config();
  c.mlp_ratio = 3.5;
  c.use_rel_pos = false;
  c.pixel_mean = {1.0, 2.0, 3.0};
  c.mask_threshold = 0.25;
  c.preprocess = SamPreprocess::kMedSam;
  const SamConfig back = SamConfig::from_json_text(c.to_json(), "round trip");
  EXPECT_TRUE(back == c) << back.to_json() << "\nvs\n" << c.to_json();
  EXPECT_EQ(back.name, "small");
  EXPECT_EQ(back.encoder_global_attn_indexes, (std::vector<int64_t>{1}));
  EXPECT_EQ(back.pixel_mean[2], 3.0);
  EXPECT_EQ(back.preprocess, SamPreprocess::kMedSam);
  EXPECT_EQ(c.to_json_object().at("preprocess"), "medsam");
  for (const char* preset : {"vit_b", "vit_l", "vit_h", "medsam"}) {
    const SamConfig p = SamConfig::preset(preset);
    EXPECT_TRUE(SamConfig::from_json_object(p.to_json_object(), preset) == p) << preset;
  }
}

TEST(SamConfigJson, UnknownFieldsTypesAndEnumNamesAreErrorsNamingTheField) {
  const std::string dir = test::temp_dir("sam_cfg_strict");
  std::ofstream(dir + "/typo.json") << R"({"config": {"encoder_depht": 2}})";
  std::ofstream(dir + "/type.json") << R"({"encoder_depth": "two"})";
  std::ofstream(dir + "/enum.json") << R"({"preprocess": "medsam2"})";
  const std::string typo = error_of([&] { SamConfig::from_json(dir + "/typo.json"); });
  EXPECT_NE(typo.find("unknown field config.encoder_depht"), std::string::npos) << typo;
  EXPECT_NE(typo.find("typo.json"), std::string::npos) << typo;
  const std::string type = error_of([&] { SamConfig::from_json(dir + "/type.json"); });
  EXPECT_NE(type.find("config.encoder_depth: expected an integer"), std::string::npos) << type;
  const std::string en = error_of([&] { SamConfig::from_json(dir + "/enum.json"); });
  EXPECT_NE(en.find("config.preprocess"), std::string::npos) << en;
  EXPECT_NE(en.find("'medsam2'"), std::string::npos) << en;
  EXPECT_NE(en.find("sam, medsam"), std::string::npos) << en;
  // The file's path names the model when the file has no "name".
  std::ofstream(dir + "/plain.json") << R"({"img_size": 512})";
  EXPECT_EQ(SamConfig::from_json(dir + "/plain.json").name, dir + "/plain.json");
  EXPECT_EQ(preprocess_names().parse("medsam"), SamPreprocess::kMedSam);
}

// A checkpoint of a random small model, written with the project's writer.
std::string write_small_checkpoint(const std::string& dir, uint64_t seed) {
  const auto model = SamModel::random(small_config(), seed);
  const std::string path = dir + "/small_sam.pth";
  checkpoint::save_state_dict(path, checkpoint::state_dict_of(internal::module(*model)));
  return path;
}

TEST(SamLoad, LeavesTheGlobalRandomGeneratorAlone) {
  const std::string path = write_small_checkpoint(test::temp_dir("sam_rng"), 3);
  at::manual_seed(1234);
  const at::Tensor before_plain = at::rand({16});
  const at::Tensor after_plain = at::rand({16});
  at::manual_seed(1234);
  const at::Tensor before = at::rand({16});
  const auto model = SamModel::load(path, small_config());
  const at::Tensor after = at::rand({16});
  EXPECT_TRUE(before.equal(before_plain));
  EXPECT_TRUE(after.equal(after_plain)) << "SamModel::load drew from or reseeded the global RNG";
}

TEST(SamLoad, EveryTensorComesFromTheCheckpoint) {
  const std::string path = write_small_checkpoint(test::temp_dir("sam_load"), 5);
  const checkpoint::StateDict file = checkpoint::load_state_dict(path);
  const auto model = SamModel::load(path, small_config());
  const checkpoint::StateDict loaded = checkpoint::state_dict_of(internal::module(*model));
  ASSERT_EQ(loaded.keys(), file.keys());
  for (const auto& key : file.keys()) {
    EXPECT_TRUE(loaded.at(key).equal(file.at(key))) << key;
  }
}

TEST(SamLoad, WrongConfigThrowsBindErrorWithKeyLists) {
  const std::string path = write_small_checkpoint(test::temp_dir("sam_bind"), 0);
  SamConfig deeper = small_config();
  deeper.encoder_depth = 3;  // one more block: its keys are missing from the file
  try {
    SamModel::load(path, deeper);
    FAIL() << "a checkpoint with 2 blocks must not load into 3";
  } catch (const checkpoint::BindError& e) {
    EXPECT_TRUE(e.unexpected().empty());
    EXPECT_TRUE(e.mismatched().empty());
    ASSERT_FALSE(e.missing().empty());
    for (const auto& key : e.missing()) {
      EXPECT_EQ(key.rfind("image_encoder.blocks.2.", 0), 0u) << key;
    }
  }
}

}  // namespace
}  // namespace nephroseg::sam
