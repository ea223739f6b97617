#include "nephroseg/core/shard.h"

#include <cstdlib>

#include "nephroseg/core/error.h"

namespace nephroseg {
namespace {

bool parse_int(const std::string& s, long long& v) {
  if (s.empty() || s.size() > 12) return false;
  size_t i = 0;
  bool neg = false;
  if (s[0] == '-') { neg = true; i = 1; }
  if (i == s.size()) return false;
  long long r = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    r = r * 10 + (s[i] - '0');
  }
  v = neg ? -r : r;
  return true;
}

const char* real_getenv(const char* name) { return std::getenv(name); }

}  // namespace

std::string Shard::suffix() const {
  return whole() ? std::string() : ".shard-" + std::to_string(index) + "-of-" + std::to_string(count);
}

std::string Shard::text() const { return std::to_string(index) + "/" + std::to_string(count); }

Shard shard_from_env(const std::string& option, const char* (*getenv_fn)(const char*)) {
  auto get = [&](const char* name, long long& v, bool required) {
    const char* s = getenv_fn(name);
    if (!s || !*s) {
      NEPHRO_CHECK(!required, option, " auto: ", name,
                   " is not set (not inside a Slurm job array; submit with sbatch --array=0-N, or give --shard K/N)");
      return false;
    }
    NEPHRO_CHECK(parse_int(s, v), option, " auto: ", name, "='", s, "' is not an integer");
    return true;
  };
  long long id = 0, count = 0, min = 0, step = 1;
  get("SLURM_ARRAY_TASK_ID", id, true);
  get("SLURM_ARRAY_TASK_COUNT", count, true);
  if (!get("SLURM_ARRAY_TASK_MIN", min, false)) min = 0;
  if (!get("SLURM_ARRAY_TASK_STEP", step, false)) step = 1;
  NEPHRO_CHECK(count >= 1 && count <= kMaxShards, option, " auto: SLURM_ARRAY_TASK_COUNT=", count, " is out of range");
  NEPHRO_CHECK(step >= 1, option, " auto: SLURM_ARRAY_TASK_STEP=", step, " is out of range");
  const long long offset = id - min;
  NEPHRO_CHECK(offset >= 0 && offset % step == 0 && offset / step < count, option,
               " auto: array task ", id, " is not one of ", count, " tasks ", min, ", ", min + step,
               ", ...: use a contiguous array such as --array=0-", count - 1);
  return Shard{static_cast<int>(offset / step) + 1, static_cast<int>(count)};
}

Shard parse_shard(const std::string& text, const std::string& option) {
  if (text.empty()) return Shard{};
  if (text == "auto") return shard_from_env(option, real_getenv);
  const auto slash = text.find('/');
  long long k = 0, n = 0;
  NEPHRO_CHECK(slash != std::string::npos && parse_int(text.substr(0, slash), k) &&
                   parse_int(text.substr(slash + 1), n),
               option, ": expected K/N (e.g. 2/8) or auto, got '", text, "'");
  NEPHRO_CHECK(n >= 1 && n <= kMaxShards && k >= 1 && k <= n, option, ": '", text,
               "' needs 1 <= K <= N <= 100000 (shards are numbered from 1)");
  return Shard{static_cast<int>(k), static_cast<int>(n)};
}

}  // namespace nephroseg
