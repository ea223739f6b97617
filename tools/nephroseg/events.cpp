#include "events.h"

#include "command.h"
#include "nephroseg/core/log.h"

namespace nephroseg::cli {

void print_event(const workloads::Event& e) {
  using Kind = workloads::Event::Kind;
  if (e.message.empty()) return;
  if (e.kind == Kind::kWarning) {
    log_warn(e.message);
  } else if (e.kind == Kind::kError) {
    log_message(LogLevel::kError, e.message);
  } else {
    log_info(e.message);
  }
}

workloads::ModelPrecision model_precision() {
  return {global_options().precision, global_options().precision_requested};
}

}  // namespace nephroseg::cli
