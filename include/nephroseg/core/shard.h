// nephroseg/core/shard.h: splitting a batch over the tasks of a job array (Slurm).
//
// The rule (documented in the README, "Running on a cluster"): the inputs are sorted
// by name (the batch commands already list them so), and input i (0-based) belongs to
// shard (i mod N) + 1. Round-robin keeps every existing input in its shard when new
// inputs sort after the old ones (appended files), and spreads slow and fast inputs
// alike. Shards are numbered 1..N in options and file names ("--shard 2/3",
// summary.shard-2-of-3.csv).
//
//   Shard s = parse_shard("auto");               // from SLURM_ARRAY_TASK_* variables
//   auto mine = s.select(items);                 // this task's inputs, order kept
//   std::string csv = "summary" + s.suffix() + ".csv";   // ".shard-2-of-3" or ""
//
// Thread safety: pure functions; parse_shard("auto") reads the environment.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace nephroseg {

/// The most shards a batch may be split into (--shard K/N, Slurm arrays, merge).
inline constexpr int kMaxShards = 100000;

struct Shard {
  int index = 1;  ///< 1..count
  int count = 1;  ///< 1 = the whole batch (no sharding)

  bool whole() const { return count == 1; }
  bool owns(size_t i) const { return static_cast<int>(i % static_cast<size_t>(count)) == index - 1; }
  /// ".shard-K-of-N" for a shard, "" for the whole batch.
  std::string suffix() const;
  /// "K/N".
  std::string text() const;

  template <typename T>
  std::vector<T> select(const std::vector<T>& items) const {
    std::vector<T> out;
    for (size_t i = 0; i < items.size(); ++i)
      if (owns(i)) out.push_back(items[i]);
    return out;
  }
};

/// "K/N" (1 <= K <= N <= kMaxShards), "" (whole batch) or "auto": a Slurm job-array task,
/// K = (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP + 1 and
/// N = SLURM_ARRAY_TASK_COUNT; outside an array job (or for an array whose ids are not
/// an arithmetic range such as --array=0-9 or 1-20:2) an error says so. `option`
/// names the option in errors.
Shard parse_shard(const std::string& text, const std::string& option = "--shard");

/// parse_shard("auto") with an explicit environment lookup (for tests).
Shard shard_from_env(const std::string& option, const char* (*getenv_fn)(const char*));

}  // namespace nephroseg
