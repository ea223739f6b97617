// The per-image prompts JSON of `nephroseg sam --prompts` (nephroseg/sam/prompts_file.h).
#include <gtest/gtest.h>

#include <string>

#include "nephroseg/core/error.h"
#include "nephroseg/sam/prompts_file.h"
#include "support/golden.h"

using namespace nephroseg;

namespace {
// The error of parsing `text` ("" when it parses).
std::string parse_error(const std::string& text) {
  return test::error_of([&] { sam::parse_prompts_json(text, "/nonexistent", "p.json"); });
}
}  // namespace

TEST(SamPromptsFile, ParsesPointsBoxesAndMultimask) {
  const auto m = sam::parse_prompts_json(
      R"({"a.png": {"points": [[120, 80, 1], [40, 200, 0], [5, 6]], "box": [10, 20, 300, 260], "multimask": true},
          "b": {"box": [5, 5, 90, 70]}})",
      "/tmp", "p.json");
  ASSERT_EQ(m.size(), 2u);
  const auto& a = m.at("a.png").prompt;
  ASSERT_EQ(a.points.size(), 3u);
  EXPECT_FLOAT_EQ(a.points[1][0], 40.f);
  EXPECT_FLOAT_EQ(a.points[1][1], 200.f);
  EXPECT_EQ(a.labels, (std::vector<int>{1, 0, 1}));
  ASSERT_TRUE(a.box.has_value());
  EXPECT_FLOAT_EQ((*a.box)[3], 260.f);
  EXPECT_TRUE(a.multimask);
  EXPECT_FALSE(m.at("b").prompt.multimask);
  EXPECT_TRUE(m.at("b").prompt.points.empty());
}

TEST(SamPromptsFile, BadEntriesNameTheEntryAndField) {
  EXPECT_NE(parse_error("[1, 2]").find("must map image file names"), std::string::npos);
  EXPECT_NE(parse_error("{not json").find("is not valid JSON"), std::string::npos);
  EXPECT_NE(parse_error(R"({"a": {"boxes": [1, 2, 3, 4]}})").find("entry 'a': unknown field 'boxes'"), std::string::npos);
  EXPECT_NE(parse_error(R"({"a": {"box": [5, 5, 1, 1]}})").find("needs X1 > X0"), std::string::npos);
  EXPECT_NE(parse_error(R"({"a": {"points": [[1, 2, 7]]}})").find("label 7"), std::string::npos);
  EXPECT_NE(parse_error(R"({"a": {"multimask": "yes"}})").find("field 'multimask' has the wrong type"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"a": {"mask_input": "none.npy"}})").find("does not exist"), std::string::npos);
  EXPECT_NE(parse_error(R"({"a": 3})").find("entry 'a' must be an object"), std::string::npos);
}
