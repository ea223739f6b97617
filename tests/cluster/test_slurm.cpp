// GBMSeg as a real Slurm job array (sbatch --array, --shard auto) and merged by a
// dependent job; a task killed mid-run is rerun and the result equals one process.
// Skips, saying why, when no Slurm cluster answers (scripts/test.sh starts one).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "cluster_support.h"
#include "nephroseg/checkpoint/pth.h"
#include "nephroseg/checkpoint/state_dict.h"
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

// The array tasks' logs (task-<k>.log), for the message of a failed job.
std::string task_logs(const std::string& dir) {
  std::string text;
  for (int k = 0; k < 3; ++k) {
    std::ifstream in(dir + "/task-" + std::to_string(k) + ".log");
    text += "\n--- task-" + std::to_string(k) + ".log:\n" +
            std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  return text;
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
      << out << task_logs(dir);
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
  // Whatever the killed writer left half-written was removed by the rerun.
  EXPECT_TRUE(temporaries_in(dir + "/sharded").empty());
}

// `srun -n 2 nephroseg glomsam train --distributed` (ranks from SLURM_PROCID /
// SLURM_NTASKS, TCP rendezvous at MASTER_ADDR:MASTER_PORT) ends with the parameters of
// one process with the global batch (tiny config, BatchNorm frozen: no batch
// statistics, so the comparison is exact up to rounding; see docs/glomsam.md).
TEST(Slurm, SrunTwoRanksTrainLikeOneProcessWithTheGlobalBatch) {
  REQUIRE_SLURM_AND_MODELS();
  const std::string dir = temp_dir("slurm_train");
  const std::string exe = binary_dir() + "/nephroseg";
  std::string out;
  ASSERT_EQ(sh(exe + " --quiet phantom --out " + dir + "/data --count 8 --size 160", &out), 0) << out;
  auto args = [&](const std::string& run, int batch) {
    return " glomsam train --images " + dir + "/data/images --masks " + dir + "/data/masks --val-images " + dir +
           "/data/images --val-masks " + dir + "/data/masks --out " + dir + "/" + run +
           " --config tiny --seed 3 --epochs 1 --batch-size " + std::to_string(batch) +
           " --lr 2e-4 --box-jitter 6 --patience 0 --train-vit --freeze-bn";
  };
  ASSERT_EQ(sh(exe + " --threads 1" + args("one", 4), &out), 0) << out;
  const std::string port = std::to_string(20000 + (::getpid() % 20000));
  ASSERT_EQ(sh("cd " + dir + " && MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + " timeout 600 srun -n 2 " + exe +
                   " --threads 1" + args("two", 2) + " --distributed --dist-timeout 120",
               &out),
            0)
      << out;
  EXPECT_NE(out.find("2 ranks x batch 2 = global batch 4"), std::string::npos) << out;
  const nephroseg::checkpoint::StateDict a = nephroseg::checkpoint::load_state_dict(dir + "/two/last.pth");
  const nephroseg::checkpoint::StateDict b = nephroseg::checkpoint::load_state_dict(dir + "/one/last.pth");
  ASSERT_EQ(a.keys(), b.keys());
  double diff2 = 0, norm2 = 0;
  for (const auto& k : b.keys()) {
    if (!b.at(k).is_floating_point() || b.at(k).numel() == 0) continue;
    const at::Tensor x = a.at(k).to(at::kDouble), y = b.at(k).to(at::kDouble);
    diff2 += (x - y).pow(2).sum().item<double>();
    norm2 += y.pow(2).sum().item<double>();
  }
  EXPECT_LE(std::sqrt(diff2 / norm2), 1e-6) << "relative L2 over the state dict";
}
