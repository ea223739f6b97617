// tests/cluster/cluster_support.h: a small GBMSeg workload (phantoms + the tiny golden
// models) and helpers to run it as one process, as shards, or as a Slurm job array.
#pragma once

#include <string>
#include <vector>

namespace nephroseg::test::cluster {

/// Phantom targets (+ masks) and a phantom reference in `dir`, made by `nephroseg phantom`.
/// Returns the gbmseg options (models, reference, targets, ground truth) without --out.
std::string make_workload(const std::string& dir, int targets);

/// Runs a shell command, returns its exit code; output goes to `log` when given.
int sh(const std::string& command, std::string* output = nullptr);

/// "" when a Slurm cluster answers (SLURM_CONF set and `sinfo` sees an idle node),
/// else why not.
std::string slurm_unavailable_reason();

/// Files of a folder whose name matches nephroseg's temporary-file pattern
/// (is_temporary_name in core/atomic_file.h).
std::vector<std::string> temporaries_in(const std::string& dir);

/// Empty when the two outputs agree: every mask byte-identical, summary.csv identical
/// except the timing columns (*_s) (and, with ignore_status, the status and message
/// columns, which say "skipped" for resumed targets); else the first difference.
std::string compare_outputs(const std::string& a, const std::string& b, bool ignore_status = false);

}  // namespace nephroseg::test::cluster
