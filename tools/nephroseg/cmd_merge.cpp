// `nephroseg merge OUT`: combine the shards of a sharded batch (`--shard K/N`) in OUT
// into the summaries and run.json one process writes; names missing or failed inputs.
// The work is workloads::merge_shards (nephroseg/workloads/merge.h), which dispatches
// on the command the shard records name. Exit 1 when an input failed in its shard.
#include "command.h"
#include "events.h"
#include "nephroseg/workloads/merge.h"

namespace nephroseg::cli {
namespace {

Runner setup(CLI::App& app) {
  auto out = std::make_shared<std::string>();
  app.add_option("OUT", *out, "output folder of the sharded run")->required();
  return [out]() { return workloads::merge_shards(*out, print_event).failed > 0 ? 1 : 0; };
}

}  // namespace

NEPHRO_COMMAND("", "merge", "combine the per-shard summaries of a sharded batch (--shard) into one", setup);

}  // namespace nephroseg::cli
