// tools/nephroseg/events.h: how the CLI shows what a workload reports
// (nephroseg/workloads/workload.h), the same way for every command.
#pragma once

#include "nephroseg/workloads/workload.h"

namespace nephroseg::cli {

/// Prints one event through the log sink: warnings as warnings, item errors as errors,
/// every other non-empty line as progress (silenced by --quiet).
void print_event(const workloads::Event& event);

/// The global --precision / --force-precision as a workload takes it.
workloads::ModelPrecision model_precision();

}  // namespace nephroseg::cli
