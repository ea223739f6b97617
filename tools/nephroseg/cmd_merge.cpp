// `nephroseg merge OUT`: combine the shards of a sharded batch (`--shard K/N`) in OUT
// into the summaries and run.json one process writes; names missing or failed inputs.
// The shard records name their command (core/batch_record.h); each command's merge
// lives beside its batch runner in the library.
#include "command.h"
#include "nephroseg/workloads/gbmseg.h"
#include "nephroseg/core/batch_record.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/workloads/eval.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/workloads/measure.h"

namespace nephroseg::cli {
namespace {

int merge_gbmseg(const std::string& out) {
  const workloads::GbmSegMergeResult r = workloads::merge_gbmseg_shards(out);
  log_info("merge: ", r.shards, " shard(s), ", r.inputs, " input(s): ", r.segmented, " segmented, ", r.skipped,
           " skipped, ", r.failed, " failed -> ", r.summary_csv);
  if (r.means) log_info("merge: mean Dice ", io::format_fixed(r.means->dice, 4), " over ", r.means->n, " image(s)");
  for (const auto& f : r.failed_names) log_warn("failed: ", f);
  if (r.failed > 0) {
    log_error(r.failed, " of ", r.inputs, " input(s) failed (rerun the batch to retry them, then merge again)");
    return 1;
  }
  return 0;
}

int merge_measure(const std::string& out) {
  const workloads::MeasureMergeResult r = workloads::merge_measure_shards(out);
  log_info("merge: ", r.shards, " shard(s), ", r.inputs, " image(s) measured -> ", r.summary_csv);
  return 0;
}

int merge_eval(const std::string& out) {
  const eval::EvalRun run = workloads::merge_eval_shards(out);
  log_info("merge: ", run.items.size(), " image(s), ", run.num_ok(), " evaluated; Dice mean ",
           io::format_fixed(run.summary.at("dice").mean, 4), " -> ", out, "/report.html");
  for (const auto& it : run.items)
    if (!it.ok) log_warn(it.name, ": ", it.status);
  return 0;
}

int merge_records(const std::string& out, const std::string& command) {
  const MergedBatch m = merge_batch_records(out, command);
  size_t ok = 0, skipped = 0;
  for (const auto& it : m.items) {
    ok += it.status == ItemStatus::kOk;
    skipped += it.status == ItemStatus::kSkipped;
  }
  log_info("merge: ", command, ", ", m.shards, " shard(s), ", m.items.size(), " input(s): ", ok, " done, ", skipped,
           " done by an earlier run -> ", out, "/run.json");
  const auto failed = m.failed();
  for (const auto& f : failed) log_warn("failed: ", f);
  return failed.empty() ? 0 : 1;
}

Runner setup(CLI::App& app) {
  auto out = std::make_shared<std::string>();
  app.add_option("OUT", *out, "output folder of the sharded run")->required();
  return [out]() {
    const std::string command = batch_command_of(*out);
    if (command == "gbmseg") return merge_gbmseg(*out);
    if (command == "measure") return merge_measure(*out);
    if (command == "eval") return merge_eval(*out);
    if (command == "sam" || command == "glomsam-predict" || command == "slide") return merge_records(*out, command);
    NEPHRO_FAIL("merge: '", *out, "' holds shards of '", command, "', which this version cannot merge");
  };
}

}  // namespace

NEPHRO_COMMAND("", "merge", "combine the per-shard summaries of a sharded batch (--shard) into one", setup);

}  // namespace nephroseg::cli
