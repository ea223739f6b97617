#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>

#include "nephroseg/core/batch_record.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/shard.h"
#include "support/golden.h"

using namespace nephroseg;

namespace {

std::map<std::string, std::string> g_env;
const char* fake_getenv(const char* name) {
  auto it = g_env.find(name);
  return it == g_env.end() ? nullptr : it->second.c_str();
}

using nephroseg::test::error_of;  // tests/support/golden.h

}  // namespace

TEST(Shard, ParsesKOfN) {
  const Shard s = parse_shard("2/3");
  EXPECT_EQ(s.index, 2);
  EXPECT_EQ(s.count, 3);
  EXPECT_EQ(s.suffix(), ".shard-2-of-3");
  EXPECT_EQ(s.text(), "2/3");
  EXPECT_TRUE(parse_shard("").whole());
  EXPECT_EQ(parse_shard("").suffix(), "");
  EXPECT_EQ(parse_shard("1/1").suffix(), "");
}

TEST(Shard, RejectsMalformed) {
  for (const char* bad : {"0/3", "4/3", "3", "a/b", "1/0", "-1/3", "1/3/4", "2/", "/2", "1/1000001"}) {
    EXPECT_NE(error_of([&] { parse_shard(bad); }).find("--shard"), std::string::npos) << bad;
  }
}

TEST(Shard, RoundRobinCoversEveryItemOnceAndIsStableWhenAppending) {
  std::vector<int> items(10);
  for (int i = 0; i < 10; ++i) items[i] = i;
  std::vector<int> seen(10, 0);
  for (int k = 1; k <= 3; ++k)
    for (int v : Shard{k, 3}.select(items)) ++seen[v];
  for (int c : seen) EXPECT_EQ(c, 1);
  EXPECT_EQ(Shard({2, 3}).select(items), (std::vector<int>{1, 4, 7}));
  // Appending items keeps the old ones where they were.
  items.push_back(10);
  items.push_back(11);
  EXPECT_EQ(Shard({2, 3}).select(items), (std::vector<int>{1, 4, 7, 10}));
}

TEST(Shard, AutoReadsSlurmArrayVariables) {
  g_env = {{"SLURM_ARRAY_TASK_ID", "0"}, {"SLURM_ARRAY_TASK_COUNT", "3"}, {"SLURM_ARRAY_TASK_MIN", "0"}};
  Shard s = shard_from_env("--shard", fake_getenv);
  EXPECT_EQ(s.index, 1);
  EXPECT_EQ(s.count, 3);
  g_env = {{"SLURM_ARRAY_TASK_ID", "7"}, {"SLURM_ARRAY_TASK_COUNT", "4"}, {"SLURM_ARRAY_TASK_MIN", "1"},
           {"SLURM_ARRAY_TASK_STEP", "2"}};  // --array=1-7:2 -> tasks 1,3,5,7
  s = shard_from_env("--shard", fake_getenv);
  EXPECT_EQ(s.index, 4);
  EXPECT_EQ(s.count, 4);
}

TEST(Shard, AutoOutsideAnArrayIsAClearError) {
  g_env = {};
  EXPECT_NE(error_of([] { shard_from_env("--shard", fake_getenv); }).find("not inside a Slurm job array"),
            std::string::npos);
  g_env = {{"SLURM_ARRAY_TASK_ID", "5"}, {"SLURM_ARRAY_TASK_COUNT", "3"}, {"SLURM_ARRAY_TASK_MIN", "0"}};
  EXPECT_NE(error_of([] { shard_from_env("--shard", fake_getenv); }).find("contiguous"), std::string::npos);
  g_env = {{"SLURM_ARRAY_TASK_ID", "x"}, {"SLURM_ARRAY_TASK_COUNT", "3"}};
  EXPECT_NE(error_of([] { shard_from_env("--shard", fake_getenv); }).find("not an integer"), std::string::npos);
}

// merge finds shard records by name. Names of that form with impossible numbers (shard
// 0, K > N, N beyond the limit) are damaged or foreign records: an error names the
// file instead of silently counting (or skipping) it, and no 2e9-entry list is built.
TEST(Shard, MergeRefusesRecordNamesWithImpossibleNumbers) {
  for (const std::string bad : {"run.shard-0-of-2.json", "run.shard-5-of-2.json", "run.shard-1-of-2000000000.json"}) {
    const std::string dir = test::temp_dir("shard_names");
    std::ofstream(dir + "/run.shard-1-of-2.json") << "{}";
    std::ofstream(dir + "/" + bad) << "{}";
    try {
      shard_record_files(dir, nullptr);
      ADD_FAILURE() << "no error for " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("'" + dir + "/" + bad + "' names shard"), std::string::npos) << e.what();
    }
    std::filesystem::remove_all(dir);
  }
  // Other names are not records: they are ignored, and a missing shard is reported.
  const std::string dir = test::temp_dir("shard_names_ok");
  std::ofstream(dir + "/run.shard-1-of-2.json") << "{}";
  std::ofstream(dir + "/run.shard-2-of-2.json.bak") << "{}";
  std::ofstream(dir + "/run.shard-1-of-2.jsonl") << "{}";
  EXPECT_THROW(shard_record_files(dir, nullptr), Error);
  std::ofstream(dir + "/run.shard-2-of-2.json") << "{}";
  int count = 0;
  EXPECT_EQ(shard_record_files(dir, &count).size(), 2u);
  EXPECT_EQ(count, 2);
  std::filesystem::remove_all(dir);
}
