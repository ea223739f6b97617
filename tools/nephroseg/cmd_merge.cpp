// `nephroseg merge OUT`: combine the shards of a sharded batch (`--shard K/N`) in OUT
// into the summary.csv and run.json one process writes; names missing or failed inputs.
#include "command.h"
#include "nephroseg/backends/gbmseg_batch.h"
#include "nephroseg/core/log.h"
#include "nephroseg/io/csv.h"

namespace nephroseg::cli {
namespace {

Runner setup(CLI::App& app) {
  auto out = std::make_shared<std::string>();
  app.add_option("OUT", *out, "output folder of the sharded run")->required();
  return [out]() {
    const backends::GbmSegMergeResult r = backends::merge_gbmseg_shards(*out);
    log_info("merge: ", r.shards, " shard(s), ", r.inputs, " input(s): ", r.segmented, " segmented, ", r.skipped,
             " skipped, ", r.failed, " failed -> ", r.summary_csv);
    if (r.means) log_info("merge: mean Dice ", io::format_fixed(r.means->dice, 4), " over ", r.means->n, " image(s)");
    for (const auto& f : r.failed_names) log_warn("failed: ", f);
    if (r.failed > 0) {
      log_error(r.failed, " of ", r.inputs, " input(s) failed (rerun the batch to retry them, then merge again)");
      return 1;
    }
    return 0;
  };
}

}  // namespace

NEPHRO_COMMAND("", "merge", "combine the per-shard summaries of a sharded batch (--shard) into one", setup);

}  // namespace nephroseg::cli
