// GlomSamConfig JSON: SAM part read by SAM's reader, strict fields and enum names,
// round trip; GlomSamModel::load leaves the global random generator alone.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <set>
#include <string>

#include "models/glomsam/internal.h"
#include "nephroseg/checkpoint/state_dict.h"
#include "nephroseg/core/error.h"
#include "nephroseg/glomsam/glomsam.h"
#include "support/golden.h"

namespace nephroseg::glomsam {
namespace {

using nephroseg::test::error_of;  // tests/support/golden.h

TEST(GlomSamConfigJson, UnknownTokenOrderIsAnErrorNamingTheField) {
  // Before, any unknown token_order silently meant "reference".
  const std::string msg =
      error_of([] { GlomSamConfig::from_json_text(R"({"token_order": "per_tokn"})", "x"); });
  EXPECT_NE(msg.find("config.token_order"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'per_tokn'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("reference, per_token"), std::string::npos) << msg;
  EXPECT_EQ(GlomSamConfig::from_json_text(R"({"token_order": "per_token"})", "x").token_order,
            TokenOrder::kPerToken);
  const std::string typo =
      error_of([] { GlomSamConfig::from_json_text(R"({"config": {"pg_scale": 8}})", "x"); });
  EXPECT_NE(typo.find("unknown field config.pg_scale"), std::string::npos) << typo;
  const std::string type =
      error_of([] { GlomSamConfig::from_json_text(R"({"unet_features": 4})", "x"); });
  EXPECT_NE(type.find("config.unet_features: expected an array"), std::string::npos) << type;
}

TEST(GlomSamConfigJson, GoldenSpellingsAndSamFieldsAreRead) {
  // The golden files' spellings: out_chans next to prompt_embed_dim, pg_freq_nums,
  // informative unet_in / mask_in / name.
  const GlomSamConfig c = GlomSamConfig::from_json_text(
      R"({"config": {"name": "g", "img_size": 160, "encoder_embed_dim": 48,
          "encoder_depth": 4, "encoder_num_heads": 3, "encoder_global_attn_indexes": [1, 3],
          "window_size": 4, "out_chans": 64, "prompt_embed_dim": 64, "cnn_chans": 64,
          "pg_scale_factor": 8, "pg_freq_nums": 0.5, "decoder_mlp_dim": 128,
          "iou_head_hidden_dim": 64, "resnet_layers": [2, 1, 1, 1],
          "unet_features": [4, 8, 16, 32], "unet_in": 80, "mask_in": 40}})",
      "golden-like");
  EXPECT_EQ(c.sam.img_size, 160);
  EXPECT_EQ(c.sam.encoder_global_attn_indexes, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(c.sam.prompt_embed_dim, 64);
  EXPECT_EQ(c.pg_freq_ratio, 0.5);
  EXPECT_EQ(c.mask_threshold, 0.5);  // official() default kept
  // SAM's own pre/post-processing fields are not GlomSAM fields.
  EXPECT_NE(error_of([] { GlomSamConfig::from_json_text(R"({"pixel_mean": [0, 0, 0]})", "x"); })
                .find("unknown field config.pixel_mean"),
            std::string::npos);
}

TEST(GlomSamConfigJson, RoundTripAndStoredFieldSet) {
  GlomSamConfig c = GlomSamConfig::tiny();
  c.token_order = TokenOrder::kPerToken;
  c.mask_threshold = 0.0;
  c.feature_aliases = false;
  const GlomSamConfig back = GlomSamConfig::from_json_text(c.to_json(), "round trip");
  EXPECT_EQ(back.to_json_object(), c.to_json_object());
  EXPECT_EQ(back.token_order, TokenOrder::kPerToken);
  // The fields the trainer has always stored in a checkpoint's "config" entry.
  const std::set<std::string> stored = {
      "img_size", "patch_size", "encoder_embed_dim", "encoder_depth", "encoder_num_heads",
      "encoder_global_attn_indexes", "window_size", "mlp_ratio", "use_rel_pos", "qkv_bias",
      "layernorm_eps", "prompt_embed_dim", "mask_in_chans", "decoder_depth",
      "decoder_num_heads", "decoder_mlp_dim", "attention_downsample_rate",
      "num_multimask_outputs", "iou_head_depth", "iou_head_hidden_dim", "cnn_chans",
      "pg_scale_factor", "pg_freq_ratio", "token_order", "resnet_layers", "resnet_stem_width",
      "resnet_num_classes", "resnet_basic_block", "se_reduction", "feature_aliases",
      "unet_features", "mask_threshold"};
  std::set<std::string> written;
  const nlohmann::json object = c.to_json_object();
  for (const auto& item : object.items()) written.insert(item.key());
  EXPECT_EQ(written, stored);
  EXPECT_EQ(c.to_json_object().at("token_order"), "per_token");
}

TEST(GlomSamLoad, LeavesTheGlobalRandomGeneratorAlone) {
  const std::string dir = test::temp_dir("glomsam_rng");
  const std::string path = dir + "/tiny.pth";
  const auto source = GlomSamModel::create(GlomSamConfig::tiny(), 4);
  source->save(path);
  at::manual_seed(7);
  at::rand({3});
  const at::Tensor after_plain = at::rand({16});
  at::manual_seed(7);
  at::rand({3});
  const auto model = GlomSamModel::load(path, GlomSamConfig::tiny());
  const at::Tensor after = at::rand({16});
  EXPECT_TRUE(after.equal(after_plain)) << "GlomSamModel::load reseeded or drew from the global RNG";
  // And every tensor came from the file (nothing left uninitialised).
  const checkpoint::StateDict a = checkpoint::state_dict_of(internal::module(*source));
  const checkpoint::StateDict b = checkpoint::state_dict_of(internal::module(*model));
  ASSERT_EQ(a.keys(), b.keys());
  for (const auto& key : a.keys()) EXPECT_TRUE(a.at(key).equal(b.at(key))) << key;
}

}  // namespace
}  // namespace nephroseg::glomsam
