// Golden parity of the APE sampling rules (case04: hand-made sub-cases) and of the
// Dec-2023 APE order on the authors' shipped prompt files (case06).
#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>

#include "gbmseg_golden.h"

using namespace nephroseg;
using namespace nephroseg::gbmseg;
using namespace nephroseg::gbmseg::golden;

TEST(GbmsegParity, Case04ApeRuleSubcases) {
  const std::string c = "case04_ape_rules";
  NEPHRO_REQUIRE_SHARED("golden/gbmseg/" + c + "/case.json");
  std::ifstream in(golden_file(c, "case.json"));
  const nlohmann::json meta = nlohmann::json::parse(in);
  ArrayCounter n;
  int subcases = 0;
  for (const auto& sub : meta.at("subcases")) {
    const std::string name = sub.at("name").get<std::string>();
    const std::string function = sub.at("function").get<std::string>();
    SCOPED_TRACE(name);
    if (function == "APE") continue;  // apedefault, below
    const Points in_pts = load_points(c, name + "_in.npy");
    const Points other = load_points(c, name + "_other.npy");
    const Points expected = load_points(c, name + "_out.npy");
    const double radius = sub.at("radius").get<double>();
    Points got;
    if (function == "refine_prompt") {
      got = sparse_sample(in_pts, radius, other);
    } else if (function == "refine_prompt_converse") {
      got = exclusive_sample(in_pts, other, radius);
    } else {
      ADD_FAILURE() << "unknown function " << function;
    }
    n.expect(got, expected, c + "/" + name);
    ++subcases;
  }
  EXPECT_EQ(subcases, 7);

  // APE([(7,7)], [(21,7)], []) with the HEAD defaults: the only negative is excluded,
  // the fixed fallback (10, 10) is inserted.
  const ApeStages s = automatic_prompt_engineering({{7, 7}}, {{21, 7}}, {}, ApeOptions{});
  n.expect(s.final_pos, load_points(c, "apedefault_final_pos.npy"), c + "/apedefault_final_pos");
  n.expect(s.final_neg, load_points(c, "apedefault_final_neg.npy"), c + "/apedefault_final_neg");
  EXPECT_TRUE(s.neg_fallback_used);
  EXPECT_FALSE(s.pos_fallback_used);
  std::cout << "[ parity  ] " << c << ": " << n.compared << " golden arrays compared\n";
}

TEST(GbmsegParity, Case06AuthorsPromptFilesWith2023Ape) {
  const std::string c = "case06_authors_txt_old_ape";
  NEPHRO_REQUIRE_SHARED("golden/gbmseg/" + c + "/case.json");
  // 2023 radii in the original 512-px frame: D_sp_hard 64, D_sp_pos 0, D_sp_neg 64,
  // D_ex 128; the sampled hard list is always appended.
  PromptOptions preset = PromptOptions::authors_2023();
  preset.size = 512;
  const ApeOptions opt = preset.ape_options();
  EXPECT_DOUBLE_EQ(opt.d_sp_hard, 64.0);
  EXPECT_DOUBLE_EQ(opt.d_sp_pos, 0.0);
  EXPECT_DOUBLE_EQ(opt.d_sp_neg, 64.0);
  EXPECT_DOUBLE_EQ(opt.d_ex, 128.0);
  EXPECT_EQ(opt.order, ApeOrder::k2023);
  EXPECT_TRUE(opt.hard_sample);

  const Points pos = load_points(c, "in_pos.npy");
  const Points neg = load_points(c, "in_neg.npy");
  const Points hard = load_points(c, "in_hard.npy");
  ArrayCounter n;
  n.expect(load_points(c, "in_hard_file_pos.npy"), pos, c + "/in_hard_file_pos == in_pos");
  const ApeStages s = automatic_prompt_engineering(pos, neg, hard, opt);
  n.expect(s.final_pos, load_points(c, "expected_final_pos.npy"), c + "/expected_final_pos");
  n.expect(s.final_neg, load_points(c, "expected_final_neg.npy"), c + "/expected_final_neg");
  std::cout << "[ parity  ] " << c << ": " << n.compared << " golden arrays compared\n";
}
