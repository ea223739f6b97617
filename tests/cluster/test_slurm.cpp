// GBMSeg as a real Slurm job array (sbatch --array, --shard auto) and merged by a
// dependent job; a task killed mid-run is rerun and the result equals one process.
// Skips, saying why, when no Slurm cluster answers (scripts/test.sh starts one).
#include <gtest/gtest.h>

#include <filesystem>

#include "cluster_support.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using namespace nephroseg::test;
using namespace nephroseg::test::cluster;

namespace {

#define REQUIRE_SLURM_AND_MODELS()                                       \
  do {                                                                   \
    NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.pth");                  \
    NEPHRO_REQUIRE_SHARED("golden/models/dinov2_tiny.pth");               \
    if (!have_cli()) GTEST_SKIP() << "the nephroseg CLI is not built";  \
    const std::string why = slurm_unavailable_reason();                  \
    if (!why.empty()) GTEST_SKIP() << why;                               \
  } while (false)

// sbatch --parsable --wait ... ; returns the exit code and the job id in *id.
int sbatch(const std::string& dir, const std::string& args, const std::string& script, std::string* output) {
  return sh("cd '" + dir + "' && sbatch --parsable --wait --chdir='" + dir + "' " + args + " --wrap \"" + script + "\"",
            output);
}

}  // namespace

TEST(Slurm, GbmSegArrayOfThreeTasksPlusMergeEqualsOneProcess) {
  REQUIRE_SLURM_AND_MODELS();
  const std::string dir = temp_dir("slurm_array");
  const std::string args = make_workload(dir, 6);
  ASSERT_FALSE(args.empty());
  ASSERT_EQ(run_cli("--quiet gbmseg" + args + " --out " + dir + "/single").code, 0);

  const std::string exe = binary_dir() + "/nephroseg";
  std::string out;
  ASSERT_EQ(sbatch(dir, "--array=0-2%3 -o " + dir + "/task-%a.log",
                   exe + " --threads 1 gbmseg" + args + " --out " + dir + "/sharded --shard auto", &out),
            0)
      << out;
  const std::string job = out.substr(0, out.find_first_of(";\n"));
  // The merge as a dependent job, as scripts/slurm/merge.sbatch does it.
  ASSERT_EQ(sbatch(dir, "--dependency=afterok:" + job + " -o " + dir + "/merge.log",
                   exe + " merge " + dir + "/sharded", &out),
            0)
      << out;
  for (int k = 1; k <= 3; ++k)
    EXPECT_TRUE(fs::exists(dir + "/sharded/run.shard-" + std::to_string(k) + "-of-3.json")) << k;
  EXPECT_EQ(compare_outputs(dir + "/single", dir + "/sharded"), "");
  EXPECT_TRUE(temporaries_in(dir + "/sharded").empty());
}

TEST(Slurm, AKilledArrayTaskIsRerunAndTheMergeCompletes) {
  REQUIRE_SLURM_AND_MODELS();
  const std::string dir = temp_dir("slurm_kill");
  const std::string args = make_workload(dir, 6);
  ASSERT_FALSE(args.empty());
  ASSERT_EQ(run_cli("--quiet gbmseg" + args + " --out " + dir + "/single").code, 0);
  const std::string exe = binary_dir() + "/nephroseg";
  const std::string cmd = exe + " --threads 1 gbmseg" + args + " --out " + dir + "/sharded --shard auto";
  // Task 1 (shard 2: phantom_1, phantom_4) is killed with SIGKILL once its first target
  // has started writing; the others finish.
  const std::string script =
      "if [ \\$SLURM_ARRAY_TASK_ID = 1 ]; then " + cmd + " & p=\\$!; "
      "while [ ! -f " + dir + "/sharded/phantom_1.prompts.json ] && kill -0 \\$p 2>/dev/null; do sleep 0.02; done; "
      "kill -9 \\$p; exit 137; else " + cmd + "; fi";
  std::string out;
  EXPECT_NE(sbatch(dir, "--array=0-2 -o " + dir + "/task-%a.log", script, &out), 0) << out;
  CliRun early = run_cli("merge " + dir + "/sharded");
  EXPECT_EQ(early.code, 1) << early.output;
  EXPECT_NE(early.output.find("shard(s) 2 of 3 have not finished"), std::string::npos) << early.output;
  // Resume = resubmit the same array: finished targets are skipped (a task with nothing
  // left does not even load the models), the killed one completes.
  ASSERT_EQ(sbatch(dir, "--array=0-2 -o " + dir + "/rerun-%a.log", cmd, &out), 0) << out;
  CliRun merged = run_cli("merge " + dir + "/sharded");
  ASSERT_EQ(merged.code, 0) << merged.output;
  // Rows of resumed targets say "skipped": compare masks and metrics, not the status.
  EXPECT_EQ(compare_outputs(dir + "/single", dir + "/sharded", /*ignore_status=*/true), "");
}
