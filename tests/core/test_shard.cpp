#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <string>

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
