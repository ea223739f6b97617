// BatchRecord / read_batch_shards (see nephroseg/core/batch_record.h).
#include "nephroseg/core/batch_record.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include "nephroseg/core/atomic_file.h"
#include "nephroseg/core/error.h"

namespace fs = std::filesystem;

namespace nephroseg {
namespace {

// Reads the decimal number at text[*pos] and moves *pos past it; false when there is
// none. Values beyond kMaxShards read as kMaxShards + 1 (no overflow, whatever the
// number of digits), so that the caller's range check names them.
bool read_count(const std::string& text, size_t* pos, int* value) {
  size_t k = *pos;
  long long v = 0;
  while (k < text.size() && text[k] >= '0' && text[k] <= '9') {
    v = std::min<long long>(v * 10 + (text[k++] - '0'), kMaxShards + 1LL);
  }
  if (k == *pos) return false;
  *pos = k;
  *value = static_cast<int>(v);
  return true;
}

// Shard K of N from a file name "run.shard-K-of-N.json"; nullopt for other names. A
// name of that form with K or N out of range (shard 0, K > N, N > kMaxShards) is an
// error: it is a damaged or foreign record, not something to skip silently.
std::optional<Shard> shard_of_record_name(const std::string& name, const std::string& dir) {
  static const std::string kHead = "run.shard-", kMid = "-of-", kTail = ".json";
  if (name.compare(0, kHead.size(), kHead) != 0) return std::nullopt;
  size_t pos = kHead.size();
  Shard s;
  if (!read_count(name, &pos, &s.index) || name.compare(pos, kMid.size(), kMid) != 0) return std::nullopt;
  pos += kMid.size();
  if (!read_count(name, &pos, &s.count) || name.compare(pos, std::string::npos, kTail) != 0) return std::nullopt;
  NEPHRO_CHECK(s.count >= 1 && s.count <= kMaxShards && s.index >= 1 && s.index <= s.count, "merge: '", dir, "/",
               name, "' names shard ", s.index, " of ", s.count > kMaxShards ? "more than " + std::to_string(kMaxShards) : std::to_string(s.count), "; shards are numbered 1..N with N <= ",
               kMaxShards, " (remove the stray file)");
  return s;
}

nlohmann::json read_record(const std::string& path) {
  std::ifstream in(path);
  NEPHRO_CHECK(in.good(), "merge: cannot read '", path, "'");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  NEPHRO_CHECK(j.is_object(), "merge: '", path, "' is not a JSON object (a damaged shard record)");
  return j;
}

}  // namespace

BatchRecord::BatchRecord(std::string command, Shard shard, size_t inputs_total, nlohmann::json settings)
    : command_(std::move(command)),
      shard_(shard),
      inputs_total_(inputs_total),
      settings_(std::move(settings)),
      extra_(nlohmann::json::object()) {}

const EnumNames<ItemStatus>& item_status_names() {
  static const EnumNames<ItemStatus> names("item status", {{ItemStatus::kOk, "ok", {}},
                                                           {ItemStatus::kSkipped, "skipped", {}},
                                                           {ItemStatus::kFailed, "failed", {}}});
  return names;
}

std::string BatchRecord::file_name() const { return "run" + shard_.suffix() + ".json"; }

std::string BatchRecord::write(const std::string& out_dir, bool complete) const {
  nlohmann::json j;
  j["command"] = command_;
  j["settings"] = settings_;
  j["inputs_total"] = inputs_total_;
  j["shard"] = {{"index", shard_.index}, {"count", shard_.count}};
  j["complete"] = complete;
  nlohmann::json items = nlohmann::json::array();
  for (const auto& it : items_) {
    nlohmann::json item = {{"index", it.index}, {"name", it.name}, {"status", item_status_names().name(it.status)}};
    if (!it.message.empty()) item["message"] = it.message;
    if (!it.data.is_null()) item["data"] = it.data;
    items.push_back(std::move(item));
  }
  j["items"] = std::move(items);
  j["extra"] = extra_;
  const std::string path = (fs::path(out_dir) / file_name()).string();
  write_file_atomically(path, j.dump(1) + "\n");
  return path;
}

nlohmann::json record_number(double value) {
  return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}

double record_number_of(const nlohmann::json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && it->is_number() ? it->get<double>() : std::numeric_limits<double>::quiet_NaN();
}

std::vector<std::string> MergedBatch::failed() const {
  std::vector<std::string> out;
  for (const auto& it : items)
    if (it.status == ItemStatus::kFailed) out.push_back(it.name + ": " + it.message);
  return out;
}

std::map<int, std::string> shard_record_files(const std::string& dir, int* count_out) {
  NEPHRO_CHECK(fs::is_directory(dir), "merge: '", dir, "' is not a folder");
  std::map<int, std::string> runs;
  int count = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    const std::optional<Shard> shard = shard_of_record_name(name, dir);
    if (!shard) continue;
    const int k = shard->index, n = shard->count;
    NEPHRO_CHECK(count == 0 || count == n, "merge: '", dir, "' holds shards of two different runs (of ", count,
                 " and of ", n, " shards)");
    count = n;
    runs[k] = e.path().string();
  }
  NEPHRO_CHECK(count > 0, "merge: no run.shard-K-of-N.json in '", dir, "' (was the batch run with --shard?)");
  std::string missing;
  for (int k = 1; k <= count; ++k)
    if (!runs.count(k)) missing += (missing.empty() ? "" : ", ") + std::to_string(k);
  NEPHRO_CHECK(missing.empty(), "merge: shard(s) ", missing, " of ", count, " have not finished (no run.shard-K-of-",
               count, ".json in '", dir, "'); rerun them, then merge");
  if (count_out) *count_out = count;
  return runs;
}

std::string batch_command_of(const std::string& dir) {
  const auto runs = shard_record_files(dir, nullptr);
  const nlohmann::json first = read_record(runs.begin()->second);
  return first.contains("command") && first["command"].is_string() ? first["command"].get<std::string>() : "gbmseg";
}

MergedBatch read_batch_shards(const std::string& dir, const std::string& command) {
  int count = 0;
  const auto runs = shard_record_files(dir, &count);

  MergedBatch merged;
  merged.command = command;
  merged.shards = count;
  size_t total = 0;
  std::vector<BatchItemRecord> items;
  for (const auto& [k, path] : runs) {
    const nlohmann::json run = read_record(path);
    NEPHRO_CHECK(run.value("command", std::string()) == command, "merge: '", path, "' is a record of '",
                 run.value("command", std::string("?")), "', not of '", command, "'");
    NEPHRO_CHECK(run.value("complete", false), "merge: shard ", k, " of ", count, " did not complete ('", path,
                 "'); rerun it, then merge");
    const nlohmann::json settings = run.value("settings", nlohmann::json());
    const size_t n = run.value("inputs_total", size_t{0});
    if (k == runs.begin()->first) {
      merged.settings = settings;
      total = n;
    } else {
      NEPHRO_CHECK(settings == merged.settings && n == total, "merge: shard ", k, " was run with other settings or ",
                   "inputs than shard ", runs.begin()->first, " (mixed runs in one folder)");
    }
    merged.extras.push_back(run.value("extra", nlohmann::json::object()));
    NEPHRO_CHECK(run.contains("items") && run["items"].is_array(), "merge: '", path, "' has no item list");
    for (const auto& j : run["items"]) {
      NEPHRO_CHECK(j.is_object() && j.contains("index") && j["index"].is_number_unsigned() && j.contains("name") &&
                       j["name"].is_string(),
                   "merge: '", path, "' holds a damaged item");
      BatchItemRecord it;
      it.index = j["index"].get<size_t>();
      it.name = j["name"].get<std::string>();
      const nlohmann::json status = j.value("status", nlohmann::json());
      NEPHRO_CHECK(status.is_string() && item_status_names().contains(status.get<std::string>()), "merge: '", path,
                   "' holds item ", it.index, " ('", it.name, "') without a known status (ok, skipped, failed)");
      it.status = item_status_names().parse(status.get<std::string>());
      it.message = j.value("message", std::string());
      it.data = j.value("data", nlohmann::json());
      NEPHRO_CHECK(it.index < n && static_cast<int>(it.index % count) == k - 1, "merge: '", path,
                   "' holds input ", it.index, " ('", it.name, "'), which is not shard ", k, "'s");
      items.push_back(std::move(it));
    }
  }
  std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
  for (size_t i = 0; i < items.size(); ++i)
    NEPHRO_CHECK(items[i].index == i, "merge: input ", i, " is in no shard record (or in two); rerun its shard (",
                 i % count + 1, "/", count, "), then merge");
  NEPHRO_CHECK(items.size() == total, "merge: the shards hold ", items.size(), " inputs but the run has ", total);
  merged.items = std::move(items);
  return merged;
}

MergedBatch merge_batch_records(const std::string& dir, const std::string& command) {
  MergedBatch merged = read_batch_shards(dir, command);
  BatchRecord record(command, Shard{}, merged.items.size(), merged.settings);
  for (const auto& it : merged.items) record.add(it);
  record.write(dir, /*complete=*/true);
  return merged;
}

}  // namespace nephroseg
