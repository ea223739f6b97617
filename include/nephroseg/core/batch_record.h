// nephroseg/core/batch_record.h: the run record of a batch command (the whole batch or
// one shard of it) and reading a sharded run's records back for `nephroseg merge`.
//
// Every batch command that takes --shard (measure, eval, sam, glomsam predict, slide;
// gbmseg too; all of them through include/nephroseg/workloads/) writes, next to its
// per-input files, a record of what it did:
//   OUT/run.json                  a whole batch (--shard absent or 1/1)
//   OUT/run.shard-K-of-N.json     shard K of N (core/shard.h)
// holding the command, the settings every shard must share, the number of inputs of
// the whole batch, and one item per input of this shard: its index in the sorted list
// of all inputs, its name, its ItemStatus ("ok", "skipped", "failed") and the numbers the
// batch summary is made of (exactly: JSON doubles round-trip). "complete" is false
// while the run is under way; a killed task leaves false (or no file) behind.
//
// read_batch_shards() checks a folder's shard records the way `merge` needs: one run
// (one N, the same command and settings), every shard present and complete, every
// input in exactly one shard, and returns the items in input order, so that a merge
// can call the very writer a single process calls.
//
//   BatchRecord rec("measure", shard, inputs.size(), settings);
//   rec.add({global_index, name, ItemStatus::kOk, "", row_json});
//   rec.write(out_dir, /*complete=*/true);          // atomically
//   ...
//   MergedBatch m = read_batch_shards(out_dir);     // in `nephroseg merge OUT`
//
// Thread safety: none needed (plain values; writes are atomic renames).
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "nephroseg/core/enum_names.h"
#include "nephroseg/core/shard.h"

namespace nephroseg {

/// How one input of a batch ended: the one status every workload uses.
enum class ItemStatus {
  kOk,       ///< processed by this run
  kSkipped,  ///< finished by an earlier run (its outputs exist); not redone
  kFailed,   ///< could not be processed; recorded with its message, the batch went on
};
/// "ok", "skipped", "failed" (the spelling of records, CSV files and Python).
const EnumNames<ItemStatus>& item_status_names();

struct BatchItemRecord {
  size_t index = 0;       ///< position in the sorted list of all inputs (0-based)
  std::string name;       ///< the input's stem
  ItemStatus status = ItemStatus::kOk;
  std::string message;    ///< why it failed ("" otherwise)
  nlohmann::json data;    ///< the command's per-input numbers (null when none)
};

class BatchRecord {
 public:
  BatchRecord(std::string command, Shard shard, size_t inputs_total, nlohmann::json settings);

  void add(BatchItemRecord item) { items_.push_back(std::move(item)); }
  /// Per-run facts that need not agree between shards (timings, versions).
  nlohmann::json& extra() { return extra_; }
  const std::vector<BatchItemRecord>& items() const { return items_; }

  /// "run.json" or "run.shard-K-of-N.json".
  std::string file_name() const;
  /// Writes OUT/file_name() atomically and returns its path.
  std::string write(const std::string& out_dir, bool complete) const;

 private:
  std::string command_;
  Shard shard_;
  size_t inputs_total_;
  nlohmann::json settings_, extra_;
  std::vector<BatchItemRecord> items_;
};

struct MergedBatch {
  std::string command;
  nlohmann::json settings;              ///< the shards' shared settings
  int shards = 0;
  std::vector<BatchItemRecord> items;   ///< every input, in input order
  std::vector<nlohmann::json> extras;   ///< each shard's extra(), shard order
  std::vector<std::string> failed() const;  ///< "name: message" of failed inputs
};

/// The run.shard-K-of-N.json files of `dir` by K, checked to be of one run (one N) with
/// none missing (the error names the missing K); *count receives N.
std::map<int, std::string> shard_record_files(const std::string& dir, int* count);

/// The command named by the shard records in `dir` ("gbmseg" for records written before
/// records named their command). An error when the folder holds no shard record.
std::string batch_command_of(const std::string& dir);

/// Reads and checks every run.shard-K-of-N.json in `dir` (see the header comment);
/// `command` must match the records'. Errors name the missing, unfinished or
/// disagreeing shard and say what to do.
MergedBatch read_batch_shards(const std::string& dir, const std::string& command);

/// A double for a record's data: exact (JSON round-trips doubles), NaN and inf as null.
nlohmann::json record_number(double value);
/// The number under `key` of a record object; NaN when absent or null.
double record_number_of(const nlohmann::json& object, const char* key);

/// For commands whose per-input files are the whole result (sam, glomsam predict,
/// slide): read_batch_shards() and then OUT/run.json as one process writes it.
MergedBatch merge_batch_records(const std::string& dir, const std::string& command);

}  // namespace nephroseg
