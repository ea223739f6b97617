// nephroseg/workloads/merge.h: `nephroseg merge OUT`, one call for every workload: the
// shard records in OUT name their command (core/batch_record.h), and the merge of that
// workload runs (merge_gbmseg_shards, merge_measure_shards, merge_eval_shards; for sam,
// glomsam-predict and slide, whose per-input files are the whole result, the combined
// run.json).
//
//   workloads::MergeResult r = workloads::merge_shards("out", sink);
//   return r.failed > 0 ? 1 : 0;
//
// Events: kInfo lines that sum the merge up, kWarning per failed input, kError when an
// input failed. Thread safety: one merge per folder at a time.
#pragma once

#include <string>

#include "nephroseg/workloads/workload.h"

namespace nephroseg::workloads {

struct MergeResult {
  std::string command;  ///< the workload merged ("gbmseg", "measure", "eval", "sam", ...)
  int shards = 0;
  size_t inputs = 0;
  int failed = 0;       ///< inputs that failed in their shard
};

/// Merges the shards in out_dir; throws nephroseg::Error naming what is missing or
/// disagrees (and for a command this version cannot merge).
MergeResult merge_shards(const std::string& out_dir, const EventSink& events = {});

}  // namespace nephroseg::workloads
