// Golden parity of the GBMSeg matching and prompt stages (shared/golden/gbmseg cases
// 01, 02, 03 and 05): every stored array is reproduced exactly.
#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>

#include "gbmseg_golden.h"
#include "nephroseg/core/log.h"
#include "nephroseg/gbmseg/prompts_json.h"

using namespace nephroseg;
using namespace nephroseg::gbmseg;
using namespace nephroseg::gbmseg::golden;

namespace {

nlohmann::json load_case_json(const std::string& c) {
  std::ifstream in(golden_file(c, "case.json"));
  return nlohmann::json::parse(in);
}

// A golden array as the JSON prompt_result_to_json writes for it.
nlohmann::json golden_json(const std::string& c, const std::string& file) {
  const at::Tensor t = load(c, file);
  nlohmann::json out = nlohmann::json::array();
  if (t.scalar_type() == at::kLong) {
    for (int64_t v : load_indices(c, file)) out.push_back(v);
  } else {
    for (const Point& p : load_points(c, file)) out.push_back({p.x, p.y});
  }
  return out;
}

struct ApeConfig {
  std::string prefix;
  PromptOptions options;
  std::string counts_key;
};

std::vector<ApeConfig> ape_configs(int size) {
  std::vector<ApeConfig> out;
  PromptOptions head = PromptOptions::authors_code(PointOrder::kCPythonSet);
  PromptOptions sorted = PromptOptions::authors_code(PointOrder::kRaster);
  PromptOptions c0947 = PromptOptions::authors_c0947(PointOrder::kCPythonSet);
  PromptOptions h1 = PromptOptions::authors_code(PointOrder::kCPythonSet);
  h1.hard_mode = HardMode::kH1;
  h1.hard_sample = true;
  for (PromptOptions* o : {&head, &sorted, &c0947, &h1}) o->size = size;
  out.push_back({"", head, "head"});
  out.push_back({"sorted_", sorted, "head_sorted"});
  out.push_back({"c0947_", c0947, "c0947"});
  out.push_back({"h1_", h1, "h1_hard"});
  return out;
}

// Checks the matching stages and the points handed to APE for one case.
void check_matching_stages(const std::string& c, const PromptResult& r, ArrayCounter& n) {
  n.expect(r.patch_sets.fg, load_indices(c, "ref_fg_idx.npy"), c + "/ref_fg_idx");
  n.expect(r.patch_sets.bg, load_indices(c, "ref_bg_idx.npy"), c + "/ref_bg_idx");
  n.expect(r.fg.forward, load_indices(c, "fwd_fg_argmin.npy"), c + "/fwd_fg_argmin");
  n.expect(r.fg.farthest, load_indices(c, "fwd_fg_argmax.npy"), c + "/fwd_fg_argmax");
  n.expect(r.bg.forward, load_indices(c, "fwd_bg_argmin.npy"), c + "/fwd_bg_argmin");
  n.expect(r.fwd_fg_pts, load_points(c, "fwd_fg_pts.npy"), c + "/fwd_fg_pts");
  n.expect(r.fwd_bg_pts, load_points(c, "fwd_bg_pts.npy"), c + "/fwd_bg_pts");
  n.expect(r.fg.back, load_indices(c, "bwd_fg_back.npy"), c + "/bwd_fg_back");
}

void check_full_case(const std::string& c) {
  const nlohmann::json meta = load_case_json(c);
  const int size = meta.at("size").get<int>();
  const int grid = meta.at("grid").get<int>();
  const at::Tensor ref = load(c, "feat_ref.npy");
  const at::Tensor tgt = load(c, "feat_tgt.npy");
  const cv::Mat mask = load_mask(c, "mask.npy");
  ASSERT_TRUE(ref.defined() && tgt.defined() && !mask.empty());
  ArrayCounter n;

  for (const ApeConfig& cfg : ape_configs(size)) {
    SCOPED_TRACE("configuration '" + cfg.prefix + "'");
    const ApeOptions ape = cfg.options.ape_options();
    EXPECT_DOUBLE_EQ(ape.d_sp_pos, meta["params"]["D_sp_pos"].get<double>());
    EXPECT_DOUBLE_EQ(ape.d_sp_neg, meta["params"]["D_sp_neg"].get<double>());
    EXPECT_DOUBLE_EQ(ape.d_ex, meta["params"]["D_ex"].get<double>());
    EXPECT_DOUBLE_EQ(ape.d_sp_hard, meta["params"]["D_sp_hard"].get<double>());

    const PromptResult r = generate_prompts(ref, tgt, grid, mask, cfg.options);
    EXPECT_TRUE(r.warnings.empty()) << r.warnings.front();

    if (cfg.prefix.empty()) {
      // Stages before APE (identical in every configuration; compared once).
      check_matching_stages(c, r, n);
      n.expect(r.bg.back, load_indices(c, "bwd_bg_back.npy"), c + "/bwd_bg_back");
      n.expect(r.fg.kept, load_indices(c, "bwd_fg_kept.npy"), c + "/bwd_fg_kept");
      n.expect(r.bg.kept, load_indices(c, "bwd_bg_kept.npy"), c + "/bwd_bg_kept");
      n.expect(r.bwd_pos_pts, load_points(c, "bwd_pos_pts.npy"), c + "/bwd_pos_pts");
      n.expect(r.bwd_neg_pts, load_points(c, "bwd_neg_pts.npy"), c + "/bwd_neg_pts");
      n.expect(r.fg.hard_h1, load_indices(c, "hard_h1_fg.npy"), c + "/hard_h1_fg");
      n.expect(r.hard_h1_pts, load_points(c, "hard_h1_pts.npy"), c + "/hard_h1_pts");
      n.expect(r.fg.hard_h2, load_indices(c, "hard_h2_fg.npy"), c + "/hard_h2_fg");
      n.expect(r.pos_initial, load_points(c, "pts_pos_initial.npy"), c + "/pts_pos_initial");
      n.expect(r.neg_initial, load_points(c, "pts_neg_initial.npy"), c + "/pts_neg_initial");
      n.expect(r.hard_initial, load_points(c, "pts_hard_initial.npy"), c + "/pts_hard_initial");
      // The JSON record holds the same arrays under the golden file names.
      const nlohmann::json j = prompt_result_to_json(r);
      for (const char* key :
           {"ref_fg_idx", "ref_bg_idx", "fwd_fg_argmin", "fwd_fg_argmax", "fwd_bg_argmin",
            "fwd_fg_pts", "fwd_bg_pts", "bwd_fg_back", "bwd_bg_back", "bwd_fg_kept",
            "bwd_bg_kept", "bwd_pos_pts", "bwd_neg_pts", "hard_h1_fg", "hard_h1_pts",
            "hard_h2_fg", "pts_pos_initial", "pts_neg_initial", "pts_hard_initial",
            "ape_in_pos", "ape_in_neg", "ape_in_hard", "ape_hard_sparse", "ape_neg_exclusive",
            "ape_pos_sparse", "ape_neg_sparse", "final_pos", "final_neg"}) {
        EXPECT_EQ(j.at(key), golden_json(c, std::string(key) + ".npy")) << c << " JSON " << key;
      }
      const double mean64 = meta.at("h1_threshold_mean_back_distance_float64").get<double>();
      EXPECT_NEAR(r.fg.h1_threshold, mean64, 1e-6 * mean64) << c << " H1 threshold";
    }

    // APE stages of this configuration, twice: inside generate_prompts and standalone
    // on the golden input lists.
    const std::string p = cfg.prefix;
    const auto check_ape = [&](const ApeStages& s, const std::string& how) {
      const std::string tag = c + "/" + p;
      n.expect(s.in_pos, load_points(c, p + "ape_in_pos.npy"), tag + "ape_in_pos" + how);
      n.expect(s.in_neg, load_points(c, p + "ape_in_neg.npy"), tag + "ape_in_neg" + how);
      n.expect(s.in_hard, load_points(c, p + "ape_in_hard.npy"), tag + "ape_in_hard" + how);
      n.expect(s.hard_sparse, load_points(c, p + "ape_hard_sparse.npy"),
               tag + "ape_hard_sparse" + how);
      n.expect(s.neg_exclusive, load_points(c, p + "ape_neg_exclusive.npy"),
               tag + "ape_neg_exclusive" + how);
      n.expect(s.pos_sparse, load_points(c, p + "ape_pos_sparse.npy"),
               tag + "ape_pos_sparse" + how);
      n.expect(s.neg_sparse, load_points(c, p + "ape_neg_sparse.npy"),
               tag + "ape_neg_sparse" + how);
      n.expect(s.final_pos, load_points(c, p + "final_pos.npy"), tag + "final_pos" + how);
      n.expect(s.final_neg, load_points(c, p + "final_neg.npy"), tag + "final_neg" + how);
    };
    check_ape(r.ape, " (generate_prompts)");
    const ApeStages standalone = automatic_prompt_engineering(
        load_points(c, p + "ape_in_pos.npy"), load_points(c, p + "ape_in_neg.npy"),
        load_points(c, p + "ape_in_hard.npy"), ape);
    check_ape(standalone, " (standalone APE)");

    const auto& counts = meta["counts"]["ape"][cfg.counts_key];
    EXPECT_EQ(r.ape.final_pos.size(), counts["n_pos_final"].get<size_t>());
    EXPECT_EQ(r.ape.final_neg.size(), counts["n_neg_final"].get<size_t>());
    EXPECT_EQ(cfg.options.hard_sample, counts["hard_sample"].get<bool>());
  }
  std::cout << "[ parity  ] " << c << ": " << n.compared << " golden arrays compared\n";
}

}  // namespace

TEST(GbmsegParity, Case01RealMask) {
  NEPHRO_REQUIRE_SHARED("golden/gbmseg/case01_realmask_g40_d16/case.json");
  check_full_case("case01_realmask_g40_d16");
}

TEST(GbmsegParity, Case02Band) {
  NEPHRO_REQUIRE_SHARED("golden/gbmseg/case02_band_g20_d8/case.json");
  check_full_case("case02_band_g20_d8");
}

TEST(GbmsegParity, Case03TinyWithPlantedTies) {
  NEPHRO_REQUIRE_SHARED("golden/gbmseg/case03_tiny_g10_d4/case.json");
  check_full_case("case03_tiny_g10_d4");
}

// The authors' backward_matching raises here (nothing rejected); we must not crash:
// the stored stages match, the hard list is empty, and the fallback path warns.
TEST(GbmsegParity, Case05NoRejectionWarnsInsteadOfCrashing) {
  const std::string c = "case05_no_rejection_raises";
  NEPHRO_REQUIRE_SHARED("golden/gbmseg/" + c + "/case.json");
  const nlohmann::json meta = load_case_json(c);
  const int size = meta.at("size").get<int>();
  const int grid = meta.at("grid").get<int>();
  const at::Tensor ref = load(c, "feat_ref.npy");
  const at::Tensor tgt = load(c, "feat_tgt.npy");
  const cv::Mat mask = load_mask(c, "mask.npy");

  std::vector<std::string> logged;
  set_log_sink([&](LogLevel level, const std::string& m) {
    if (level == LogLevel::kWarn) logged.push_back(m);
  });
  PromptOptions opt = PromptOptions::authors_code(PointOrder::kCPythonSet);
  opt.size = size;
  opt.hard_mode = HardMode::kH1;  // the list the authors fail to build
  opt.hard_sample = true;
  PromptResult r;
  EXPECT_NO_THROW(r = generate_prompts(ref, tgt, grid, mask, opt));
  set_log_sink({});

  ArrayCounter n;
  check_matching_stages(c, r, n);
  EXPECT_EQ(n.compared, 8);
  std::cout << "[ parity  ] " << c << ": " << n.compared << " golden arrays compared\n";

  EXPECT_TRUE(r.fg.no_rejection);
  EXPECT_TRUE(r.fg.rejected.empty());
  EXPECT_TRUE(r.fg.hard_h1.empty());
  EXPECT_TRUE(r.hard_initial.empty());
  ASSERT_FALSE(r.warnings.empty());
  EXPECT_EQ(logged.size(), r.warnings.size());
  bool mentions = false;
  for (const auto& w : r.warnings) mentions |= w.find("rejected no foreground") != std::string::npos;
  EXPECT_TRUE(mentions) << "no warning about the missing rejection";
  // Identical features: every fg patch matches itself and comes back.
  EXPECT_EQ(r.fg.kept, r.fg.forward);
  EXPECT_EQ(r.fg.forward, r.patch_sets.fg);
  EXPECT_FALSE(r.ape.final_pos.empty());
  EXPECT_FALSE(r.ape.final_neg.empty());
}
