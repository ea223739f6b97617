// Dinov2Config JSON round trip and strictness; Dinov2Model::load leaves the global
// random generator alone and reports BindError lists.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

#include "models/dinov2/internal.h"
#include "nephroseg/checkpoint/pth.h"
#include "nephroseg/checkpoint/state_dict.h"
#include "nephroseg/core/error.h"
#include "nephroseg/dinov2/dinov2.h"
#include "support/golden.h"

namespace nephroseg::dinov2 {
namespace {

Dinov2Config small_config() {
  Dinov2Config c;
  c.img_size = 56;
  c.embed_dim = 24;
  c.depth = 2;
  c.num_heads = 2;
  return c;
}

using nephroseg::test::error_of;  // tests/support/golden.h

TEST(Dinov2ConfigJson, RoundTripKeepsEveryField) {
  Dinov2Config c = small_config();
  c.ffn_layer = "swiglufused";
  c.num_register_tokens = 4;
  c.interpolate_antialias = true;
  c.interpolate_offset = 0.0;
  c.init_values = 0.5;
  c.qkv_bias = false;
  EXPECT_TRUE(Dinov2Config::from_json_text(c.to_json(), "round trip") == c) << c.to_json();
  for (const auto& name : Dinov2Config::preset_names()) {
    const Dinov2Config p = Dinov2Config::preset(name);
    EXPECT_TRUE(Dinov2Config::from_json_object(p.to_json_object(), name) == p) << name;
  }
  // The reference's init_values None means no LayerScale.
  EXPECT_EQ(Dinov2Config::from_json_text(R"({"init_values": null})", "null").init_values, 0.0);
}

TEST(Dinov2ConfigJson, ErrorsNameTheField) {
  const std::string dir = test::temp_dir("dinov2_cfg_strict");
  std::ofstream(dir + "/typo.json") << R"({"embed_dim": 24, "num_head": 2})";
  std::ofstream(dir + "/type.json") << R"({"qkv_bias": 1})";
  std::ofstream(dir + "/chunks.json") << R"({"block_chunks": 4})";
  const std::string typo = error_of([&] { Dinov2Config::from_json(dir + "/typo.json"); });
  EXPECT_NE(typo.find("unknown field config.num_head"), std::string::npos) << typo;
  const std::string type = error_of([&] { Dinov2Config::from_json(dir + "/type.json"); });
  EXPECT_NE(type.find("config.qkv_bias: expected true or false"), std::string::npos) << type;
  const std::string chunks = error_of([&] { Dinov2Config::from_json(dir + "/chunks.json"); });
  EXPECT_NE(chunks.find("config.block_chunks"), std::string::npos) << chunks;
}

std::string write_small_checkpoint(const std::string& dir) {
  const auto model = Dinov2Model::random(small_config(), 2);
  const std::string path = dir + "/small_dinov2.pth";
  checkpoint::save_state_dict(path, checkpoint::state_dict_of(internal::module(*model)));
  return path;
}

TEST(Dinov2Load, LeavesTheGlobalRandomGeneratorAlone) {
  const std::string path = write_small_checkpoint(test::temp_dir("dinov2_rng"));
  at::manual_seed(99);
  at::rand({4});
  const at::Tensor after_plain = at::rand({16});
  at::manual_seed(99);
  at::rand({4});
  const auto model = Dinov2Model::load(path, small_config());
  const at::Tensor after = at::rand({16});
  EXPECT_TRUE(after.equal(after_plain)) << "Dinov2Model::load drew from the global RNG";
}

TEST(Dinov2Load, WrongWidthThrowsBindErrorWithMismatches) {
  const std::string path = write_small_checkpoint(test::temp_dir("dinov2_bind"));
  Dinov2Config wide = small_config();
  wide.embed_dim = 32;
  try {
    Dinov2Model::load(path, wide);
    FAIL() << "a width-24 checkpoint must not load at width 32";
  } catch (const checkpoint::BindError& e) {
    EXPECT_TRUE(e.missing().empty());
    EXPECT_TRUE(e.unexpected().empty());
    ASSERT_FALSE(e.mismatched().empty());
    EXPECT_EQ(e.mismatched()[0].key, "cls_token");
    EXPECT_EQ(e.mismatched()[0].expected_shape, (std::vector<int64_t>{1, 1, 32}));
    EXPECT_EQ(e.mismatched()[0].found_shape, (std::vector<int64_t>{1, 1, 24}));
    // The summary line comes first.
    EXPECT_EQ(std::string(e.what()).rfind("checkpoint " + path + " holds", 0), 0u) << e.what();
  }
}

}  // namespace
}  // namespace nephroseg::dinov2
