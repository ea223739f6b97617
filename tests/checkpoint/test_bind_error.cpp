// BindError: strict binding failures carry the key lists, so callers can summarise
// or test them without parsing the message.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <string>
#include <vector>

#include "nephroseg/checkpoint/state_dict.h"
#include "nephroseg/core/error.h"

using namespace nephroseg;
using namespace nephroseg::checkpoint;

namespace {

// Keys: head.weight [4, 3], head.bias [4], conv.weight [2, 1, 3, 3], conv.bias [2].
struct TwoLayers : torch::nn::Module {
  TwoLayers() {
    head = register_module("head", torch::nn::Linear(3, 4));
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 2, 3)));
  }
  torch::nn::Linear head{nullptr};
  torch::nn::Conv2d conv{nullptr};
};

}  // namespace

TEST(BindError, CarriesMissingUnexpectedAndMismatchedKeys) {
  TwoLayers m;
  StateDict sd;
  sd.insert("extra.one", at::ones({1}));            // unexpected
  sd.insert("head.weight", at::ones({4, 5}));       // wrong shape
  sd.insert("head.bias", at::ones({4}));
  sd.insert("conv.weight", at::ones({2, 1, 3, 3}, at::kLong));  // wrong dtype kind
  sd.insert("extra.two", at::ones({2}));            // unexpected
  // conv.bias missing
  try {
    bind_state_dict(m, sd, "model.pth");
    FAIL() << "binding a state dict that does not fit must throw";
  } catch (const BindError& e) {
    EXPECT_EQ(e.checkpoint(), "model.pth");
    EXPECT_EQ(e.missing(), (std::vector<std::string>{"conv.bias"}));
    EXPECT_EQ(e.unexpected(), (std::vector<std::string>{"extra.one", "extra.two"}));
    ASSERT_EQ(e.mismatched().size(), 2u);
    EXPECT_EQ(e.mismatched()[0].key, "head.weight");
    EXPECT_EQ(e.mismatched()[0].expected_shape, (std::vector<int64_t>{4, 3}));
    EXPECT_EQ(e.mismatched()[0].found_shape, (std::vector<int64_t>{4, 5}));
    EXPECT_TRUE(e.mismatched()[0].expected_dtype.empty());
    EXPECT_EQ(e.mismatched()[1].key, "conv.weight");
    EXPECT_EQ(e.mismatched()[1].expected_dtype, "Float");
    EXPECT_EQ(e.mismatched()[1].found_dtype, "Long");
    EXPECT_EQ(e.expected_count(), 4u);
    EXPECT_EQ(e.found_count(), 5u);
    // Still a nephroseg::Error with the full message.
    const Error& base = e;
    EXPECT_NE(std::string(base.what()).find("model.pth"), std::string::npos) << base.what();
  }
}

TEST(BindError, AllowedKeysAreNotListed) {
  TwoLayers m;
  StateDict sd;
  sd.insert("head.weight", at::ones({4, 3}));
  sd.insert("head.bias", at::ones({4}));
  sd.insert("conv.weight", at::ones({2, 1, 3, 3}));
  sd.insert("aux.weight", at::ones({1}));
  BindOptions o;
  o.allow_missing = {"conv.bias"};
  EXPECT_NO_THROW(bind_state_dict(m, sd, "ok.pth", {{"conv.bias"}, {"aux.weight"}}));
  try {
    bind_state_dict(m, sd, "ok.pth", o);  // aux.weight is not allowed here
    FAIL() << "an unexpected key must throw";
  } catch (const BindError& e) {
    EXPECT_TRUE(e.missing().empty());
    EXPECT_EQ(e.unexpected(), (std::vector<std::string>{"aux.weight"}));
    EXPECT_TRUE(e.mismatched().empty());
  }
}
