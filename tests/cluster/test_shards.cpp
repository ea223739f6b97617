// Sharded GBMSeg batches and `nephroseg merge`, run as separate processes here (the
// Slurm versions are in test_slurm.cpp).
#include <gtest/gtest.h>

#include <filesystem>

#include "cluster_support.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using namespace nephroseg::test;
using namespace nephroseg::test::cluster;

#define REQUIRE_MODELS()                                \
  do {                                                  \
    NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.pth"); \
    NEPHRO_REQUIRE_SHARED("golden/models/dinov2_tiny.pth"); \
    if (!have_cli()) GTEST_SKIP() << "the nephroseg CLI is not built"; \
  } while (false)

TEST(GbmSegShards, ThreeShardsMergedEqualOneProcess) {
  REQUIRE_MODELS();
  const std::string dir = temp_dir("shards3");
  const std::string args = make_workload(dir, 7);
  ASSERT_FALSE(args.empty());
  CliRun single = run_cli("--quiet gbmseg" + args + " --out " + dir + "/single");
  ASSERT_EQ(single.code, 0) << single.output;

  // Merging before every shard has run names the missing ones.
  CliRun s1 = run_cli("gbmseg" + args + " --out " + dir + "/sharded --shard 1/3");
  ASSERT_EQ(s1.code, 0) << s1.output;
  CliRun early = run_cli("merge " + dir + "/sharded");
  EXPECT_EQ(early.code, 1);
  EXPECT_NE(early.output.find("shard(s) 2, 3 of 3 have not finished"), std::string::npos) << early.output;
  EXPECT_FALSE(fs::exists(dir + "/sharded/summary.csv"));

  for (int k : {3, 2}) {  // any order
    CliRun s = run_cli("gbmseg" + args + " --out " + dir + "/sharded --shard " + std::to_string(k) + "/3");
    ASSERT_EQ(s.code, 0) << s.output;
    EXPECT_NE(s.output.find("reference features from reference.features.npy"), std::string::npos) << s.output;
  }
  CliRun merged = run_cli("merge " + dir + "/sharded");
  ASSERT_EQ(merged.code, 0) << merged.output;
  EXPECT_EQ(compare_outputs(dir + "/single", dir + "/sharded"), "");
  // Round-robin: 7 targets over 3 shards -> 3, 2, 2.
  EXPECT_TRUE(fs::exists(dir + "/sharded/summary.shard-1-of-3.csv"));
  EXPECT_TRUE(fs::exists(dir + "/sharded/run.json"));
}

TEST(GbmSegShards, StoredReferenceFeaturesMustMatchTheRun) {
  REQUIRE_MODELS();
  const std::string dir = temp_dir("shards_mismatch");
  const std::string args = make_workload(dir, 3);
  ASSERT_FALSE(args.empty());
  ASSERT_EQ(run_cli("--quiet gbmseg" + args + " --out " + dir + "/out --shard 1/2").code, 0);
  // Another working size changes what the stored features mean.
  CliRun other = run_cli("gbmseg" + args + " --size 112 --out " + dir + "/out --shard 2/2");
  EXPECT_EQ(other.code, 1) << other.output;
  EXPECT_NE(other.output.find("reference.features.npy' was computed with other settings"), std::string::npos)
      << other.output;
  EXPECT_NE(other.output.find("size differs"), std::string::npos) << other.output;
}

TEST(GbmSegShards, BadShardOptionsAreUsageOrInputErrors) {
  if (!have_cli()) GTEST_SKIP() << "the nephroseg CLI is not built";
  const std::string dir = temp_dir("shards_bad");
  CliRun bad = run_cli("gbmseg --features classical --segmenter classical --reference-image x --reference-mask y "
                       "--target z --out " + dir + " --shard 4/3");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.output.find("--shard: '4/3' needs 1 <= K <= N"), std::string::npos) << bad.output;
  CliRun none = run_cli("merge " + dir);
  EXPECT_EQ(none.code, 1);
  EXPECT_NE(none.output.find("no run.shard-K-of-N.json"), std::string::npos) << none.output;
  CliRun missing = run_cli("merge");
  EXPECT_EQ(missing.code, 2) << missing.output;
}
