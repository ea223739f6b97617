// nephroseg/workloads/eval.h: `nephroseg eval` as a batch: segmentation metrics of a
// folder of predicted masks against a folder of truth masks, with the HTML report
// (eval/report.h), whole or as one shard of a job array, and the merge of the shards.
//
//   workloads::EvalBatchOptions o;
//   o.pred_dir = "pred/"; o.truth_dir = "truth/"; o.out_dir = "report/";
//   eval::EvalRun run = workloads::run_eval_batch(o);
//
// Files: the report files of eval::write_eval_report and run.json for a whole run; only
// run.shard-K-of-N.json for shard K of N (each item's metrics exactly;
// core/batch_record.h). merge_eval_shards() writes what one process writes (the
// pictures are drawn again from the mask files).
//
// Thread safety: one run per output folder at a time (shards: one per K).
#pragma once

#include <string>

#include "nephroseg/core/shard.h"
#include "nephroseg/eval/report.h"
#include "nephroseg/workloads/workload.h"

namespace nephroseg::workloads {

struct EvalBatchOptions {
  std::string pred_dir;       ///< folder of predicted masks
  std::string truth_dir;      ///< folder of truth masks (same names, any extension)
  std::string out_dir;        ///< created when missing
  eval::EvalOptions options;  ///< mask reading, metrics, overlays, title
  Shard shard;                ///< whole run by default
};

/// Runs the batch. A whole run in which no image could be evaluated is an error; a
/// shard's failures are recorded for the merge. Events: kItemFinished per image (its
/// status and, when it failed, why), on the calling thread.
eval::EvalRun run_eval_batch(const EvalBatchOptions& options, const EventSink& events = {});

/// Combines the shards of an `eval --shard` run in out_dir (see the header comment).
eval::EvalRun merge_eval_shards(const std::string& out_dir);

}  // namespace nephroseg::workloads
