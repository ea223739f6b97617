// One merge for every workload (see nephroseg/workloads/merge.h).
#include "nephroseg/workloads/merge.h"

#include "nephroseg/core/error.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/workloads/eval.h"
#include "nephroseg/workloads/gbmseg.h"
#include "nephroseg/workloads/measure.h"

namespace nephroseg::workloads {
namespace {

struct Say {
  const EventSink& events;
  void operator()(Event::Kind kind, std::string message) const {
    Event e;
    e.kind = kind;
    e.message = std::move(message);
    emit(events, e);
  }
};

MergeResult merge_gbmseg(const std::string& out, const Say& say) {
  const GbmSegMergeResult r = merge_gbmseg_shards(out);
  say(Event::Kind::kInfo,
      detail::concat("merge: ", r.shards, " shard(s), ", r.inputs, " input(s): ", r.segmented, " segmented, ",
                     r.skipped, " skipped, ", r.failed, " failed -> ", r.summary_csv));
  if (r.means)
    say(Event::Kind::kInfo, detail::concat("merge: mean Dice ", io::format_fixed(r.means->dice, 4), " over ",
                                           r.means->n, " image(s)"));
  for (const auto& f : r.failed_names) say(Event::Kind::kWarning, "failed: " + f);
  if (r.failed > 0)
    say(Event::Kind::kError,
        detail::concat(r.failed, " of ", r.inputs,
                       " input(s) failed (rerun the batch to retry them, then merge again)"));
  return {"gbmseg", r.shards, r.inputs, r.failed};
}

MergeResult merge_measure(const std::string& out, const Say& say) {
  const MeasureMergeResult r = merge_measure_shards(out);
  say(Event::Kind::kInfo,
      detail::concat("merge: ", r.shards, " shard(s), ", r.inputs, " image(s) measured -> ", r.summary_csv));
  return {"measure", r.shards, r.inputs, 0};
}

MergeResult merge_eval(const std::string& out, const Say& say) {
  const eval::EvalRun run = merge_eval_shards(out);
  say(Event::Kind::kInfo,
      detail::concat("merge: ", run.items.size(), " image(s), ", run.num_ok(), " evaluated; Dice mean ",
                     io::format_fixed(run.summary.at("dice").mean, 4), " -> ", out, "/report.html"));
  for (const auto& it : run.items)
    if (!it.ok) say(Event::Kind::kWarning, it.name + ": " + it.status);
  return {"eval", 0, run.items.size(), 0};
}

MergeResult merge_records(const std::string& out, const std::string& command, const Say& say) {
  const MergedBatch m = merge_batch_records(out, command);
  size_t ok = 0, skipped = 0;
  for (const auto& it : m.items) {
    ok += it.status == ItemStatus::kOk;
    skipped += it.status == ItemStatus::kSkipped;
  }
  say(Event::Kind::kInfo,
      detail::concat("merge: ", command, ", ", m.shards, " shard(s), ", m.items.size(), " input(s): ", ok,
                     " done, ", skipped, " done by an earlier run -> ", out, "/run.json"));
  const auto failed = m.failed();
  for (const auto& f : failed) say(Event::Kind::kWarning, "failed: " + f);
  return {command, m.shards, m.items.size(), static_cast<int>(failed.size())};
}

}  // namespace

MergeResult merge_shards(const std::string& out_dir, const EventSink& events) {
  const Say say{events};
  const std::string command = batch_command_of(out_dir);
  if (command == "gbmseg") return merge_gbmseg(out_dir, say);
  if (command == "measure") return merge_measure(out_dir, say);
  if (command == "eval") return merge_eval(out_dir, say);
  if (command == "sam" || command == "glomsam-predict" || command == "slide")
    return merge_records(out_dir, command, say);
  NEPHRO_FAIL("merge: '", out_dir, "' holds shards of '", command, "', which this version cannot merge");
}

}  // namespace nephroseg::workloads
