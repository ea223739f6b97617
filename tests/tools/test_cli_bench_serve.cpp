// `nephroseg bench serve`: registered, its help, a smoke run on a tiny random SAM
// (the golden tiny config; small views, a 4 x 4 automask grid) and its refusals. A
// smoke run, not a measurement: the floors are printed, not checked here.
#include <gtest/gtest.h>

#include <filesystem>

#include "support/golden.h"

namespace fs = std::filesystem;
using nephroseg::test::CliRun;
using nephroseg::test::have_cli;
using nephroseg::test::run_cli;
using nephroseg::test::shared_path;
using nephroseg::test::temp_dir;

TEST(CliBenchServe, HelpListsItsOptions) {
  if (!have_cli()) GTEST_SKIP() << "build the nephroseg CLI first";
  CliRun bench = run_cli("bench --help");
  EXPECT_EQ(bench.code, 0) << bench.output;
  EXPECT_NE(bench.output.find("serve"), std::string::npos) << bench.output;
  CliRun help = run_cli("bench serve --help");
  EXPECT_EQ(help.code, 0) << help.output;
  for (const char* option : {"--runs", "--model-type", "--model-config", "--points-per-side", "--image-size", "--dir"})
    EXPECT_NE(help.output.find(option), std::string::npos) << option << "\n" << help.output;
}

TEST(CliBenchServe, RunsOnATinyModelAndLeavesNoFilesBehind) {
  if (!have_cli()) GTEST_SKIP() << "build the nephroseg CLI first";
  NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.json");
  const std::string dir = temp_dir("bench_serve");
  CliRun r = run_cli("bench serve --runs 1 --model-config " + shared_path("golden/models/sam_tiny.json") +
                     " --image-size 256 --points-per-side 4 --dir " + dir);
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* line : {"(a) new-view click", "(b) cached-view click", "automask pps 4 (cached view)",
                           "<= 1.15 x encoder + 0.100 s", "<= 1.30 x predict + 0.030 s", "automask decoder: 1 batch"})
    EXPECT_NE(r.output.find(line), std::string::npos) << line << "\n" << r.output;
  EXPECT_TRUE(fs::is_empty(dir)) << "the temporary checkpoint folder was not removed";
}

TEST(CliBenchServe, RefusesBadNumbersBeforeBuildingAModel) {
  if (!have_cli()) GTEST_SKIP() << "build the nephroseg CLI first";
  CliRun runs = run_cli("bench serve --runs 0");
  EXPECT_EQ(runs.code, 1) << runs.output;
  EXPECT_NE(runs.output.find("--runs must be >= 1"), std::string::npos) << runs.output;
  CliRun size = run_cli("bench serve --image-size 16");
  EXPECT_EQ(size.code, 1) << size.output;
  EXPECT_NE(size.output.find("--image-size must lie in [32, 4096]"), std::string::npos) << size.output;
  CliRun grid = run_cli("bench serve --points-per-side 300");
  EXPECT_EQ(grid.code, 1) << grid.output;
  EXPECT_NE(grid.output.find("--points-per-side must lie in [0, 256]"), std::string::npos) << grid.output;
  CliRun model = run_cli("bench serve --model-type vit_x");
  EXPECT_EQ(model.code, 1) << model.output;
}
