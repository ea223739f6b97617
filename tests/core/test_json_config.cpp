// JsonConfigReader: typed fields with defaults, aliases, enum names and the
// unknown-field check, each error naming the field path.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

#include "nephroseg/core/enum_names.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/json_config.h"
#include "support/golden.h"

namespace nephroseg {
namespace {

enum class Colour { kRed, kDarkBlue };

const EnumNames<Colour>& colour_names() {
  static const EnumNames<Colour> t("colour", {{Colour::kRed, "red", {}},
                                              {Colour::kDarkBlue, "dark_blue", {"dark-blue"}}});
  return t;
}

using nephroseg::test::error_of;  // tests/support/golden.h

TEST(JsonConfig, ReadsTypedFieldsAndKeepsDefaults) {
  const nlohmann::json j = nlohmann::json::parse(
      R"({"depth": 4, "ratio": 2.5, "flag": true, "label": "x", "dims": [1, 2],
          "mean": [1, 2.5, 3], "old_width": 7, "colour": "dark-blue", "note": "n"})");
  JsonConfigReader r(j, "test.json");
  int64_t depth = 0, width = 3, absent = 11, integral = 0;
  double ratio = 0;
  bool flag = false;
  std::string label;
  std::vector<int64_t> dims;
  std::array<double, 3> mean{};
  Colour colour = Colour::kRed;
  EXPECT_TRUE(r.read("depth", depth));
  EXPECT_TRUE(r.read("ratio", ratio));
  EXPECT_TRUE(r.read("flag", flag));
  EXPECT_TRUE(r.read("label", label));
  EXPECT_TRUE(r.read("dims", dims));
  EXPECT_TRUE(r.read("mean", mean));
  EXPECT_TRUE(r.read("width", width, {"old_width"}));
  EXPECT_FALSE(r.read("absent", absent));
  EXPECT_TRUE(r.read("colour", colour, colour_names()));
  r.ignore("note");
  EXPECT_NO_THROW(r.finish());
  EXPECT_EQ(depth, 4);
  EXPECT_EQ(ratio, 2.5);
  EXPECT_TRUE(flag);
  EXPECT_EQ(label, "x");
  EXPECT_EQ(dims, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(mean, (std::array<double, 3>{1.0, 2.5, 3.0}));
  EXPECT_EQ(width, 7);
  EXPECT_EQ(absent, 11);
  EXPECT_EQ(colour, Colour::kDarkBlue);
  // A float with an integral value is an integer.
  const nlohmann::json f = nlohmann::json::parse(R"({"n": 8.0})");
  JsonConfigReader rf(f, "f.json");
  EXPECT_TRUE(rf.read("n", integral));
  EXPECT_EQ(integral, 8);
}

TEST(JsonConfig, ErrorsNameTheFieldPath) {
  const nlohmann::json j = nlohmann::json::parse(
      R"({"depth": "four", "ratio": 2.5, "colour": "green", "dims": [1, "b"], "typo": 1})");
  {
    JsonConfigReader r(j, "cfg.json");
    int64_t depth = 0;
    EXPECT_EQ(error_of([&] { r.read("depth", depth); }),
              "cfg.json: config.depth: expected an integer, got string \"four\"");
  }
  {
    JsonConfigReader r(j, "cfg.json");
    int64_t ratio = 0;
    EXPECT_EQ(error_of([&] { r.read("ratio", ratio); }),
              "cfg.json: config.ratio: expected an integer, got number 2.5");
  }
  {
    JsonConfigReader r(j, "cfg.json", "config.model");
    Colour c = Colour::kRed;
    EXPECT_EQ(error_of([&] { r.read("colour", c, colour_names()); }),
              "cfg.json: config.model.colour: unknown colour 'green' (expected one of: red, "
              "dark_blue)");
  }
  {
    JsonConfigReader r(j, "cfg.json");
    std::vector<int64_t> dims;
    EXPECT_NE(error_of([&] { r.read("dims", dims); }).find("config.dims[1]"), std::string::npos);
  }
  {
    JsonConfigReader r(j, "cfg.json");
    for (const char* k : {"depth", "ratio", "colour", "dims"}) r.ignore(k);
    EXPECT_EQ(error_of([&] { r.finish(); }), "cfg.json: unknown field config.typo");
  }
  EXPECT_NE(error_of([] { JsonConfigReader r(nlohmann::json::array(), "a.json"); })
                .find("a.json: config must be a JSON object"),
            std::string::npos);
}

TEST(JsonConfig, FileReaderUnwrapsConfigMemberAndNamesTheFile) {
  const std::string dir = test::temp_dir("json_config");
  std::ofstream(dir + "/wrapped.json") << R"({"case": "x", "config": {"depth": 2}})";
  std::ofstream(dir + "/broken.json") << R"({"depth": )";
  const nlohmann::json j = read_json_config_file(dir + "/wrapped.json", "test config");
  EXPECT_EQ(j, nlohmann::json::parse(R"({"depth": 2})"));
  EXPECT_NE(error_of([&] { read_json_config_file(dir + "/broken.json", "test config"); })
                .find("broken.json is not valid JSON"),
            std::string::npos);
  EXPECT_NE(error_of([&] { read_json_config_file(dir + "/none.json", "test config"); })
                .find("none.json: cannot open"),
            std::string::npos);
}

TEST(JsonConfig, IntegersBeyondInt64AreErrorsNotUndefinedBehaviour) {
  // Regression (fuzz_config_json, UBSan): 1.7e49 was cast to int64_t unchecked.
  const nlohmann::json j = nlohmann::json::parse(
      R"({"a": 1.7e49, "b": -9.3e18, "c": 18446744073709551615, "d": [1, 18446744073709551615], "e": 9.2e18})");
  for (const char* key : {"a", "b", "c"}) {
    JsonConfigReader r(j, "cfg.json");
    int64_t v = 0;
    EXPECT_NE(error_of([&] { r.read(key, v); }).find("is out of range"), std::string::npos) << key;
  }
  JsonConfigReader r(j, "cfg.json");
  std::vector<int64_t> d;
  EXPECT_NE(error_of([&] { r.read("d", d); }).find("config.d[1]: integer 18446744073709551615 is out of range"),
            std::string::npos);
  int64_t e = 0;
  r.read("e", e);
  EXPECT_EQ(e, int64_t{9200000000000000000});
}

}  // namespace
}  // namespace nephroseg
