// nephroseg/workloads/workload.h: what every workload shares. A workload (GBMSeg over
// targets, thickness over masks, eval, SAM over images, GlomSAM predict, slide folders,
// the GlomSAM protocol, the demo) has:
//   - an options struct holding every default (the CLI, Python and the server bind it;
//     none of them repeats a default),
//   - run_<workload>(const Options&, const EventSink&) that writes its files and reports
//     progress and per-item results as events (it never prints),
//   - merge_<workload>_shards(out_dir) where it can run as shards (core/shard.h), and
//     merge_shards(out_dir) dispatching on the run record's command (workloads/merge.h).
// Per-item status is ItemStatus (core/batch_record.h): ok, skipped (finished by an
// earlier run), failed (recorded with its message; the batch goes on).
//
//   workloads::EventSink sink = [](const workloads::Event& e) {
//     if (e.kind == workloads::Event::Kind::kItemFinished) std::cerr << e.message << "\n";
//   };
//
// Thread safety: a workload calls its sink on the thread that called run_*; the sink
// must not throw unless it wants the run stopped (the exception propagates).
#pragma once

#include <any>
#include <cstddef>
#include <functional>
#include <string>

#include "nephroseg/core/batch_record.h"
#include "nephroseg/core/precision.h"

namespace nephroseg::workloads {

/// One thing a workload reports.
struct Event {
  enum class Kind {
    kModelsReady,   ///< models loaded, reference prepared; items follow
    kItemStarted,   ///< an item is about to be processed
    kProgress,      ///< progress inside an item: index of total steps (e.g. tiles) done
    kItemFinished,  ///< an item is done (status says how)
    kWarning,       ///< something the user should know; the run goes on
    kError,         ///< an item failed (the error line); the run goes on
    kInfo,          ///< a progress line that is not about one item
  };
  Kind kind = Kind::kInfo;
  size_t index = 0;                     ///< the item's position in this run (0-based)
  size_t total = 0;                     ///< items in this run
  std::string item;                     ///< the item's name ("" when not about one item)
  ItemStatus status = ItemStatus::kOk;  ///< kItemFinished
  /// The line a front end shows: the warning, the failure, or the item's one-line
  /// result, already worded (the CLI prints it as it is).
  std::string message;
  /// Workload-specific detail for front ends that want more than the line (each
  /// workload's header says what it holds, e.g. `const GbmSegEventDetail*`); may be empty.
  std::any detail;
};

using EventSink = std::function<void(const Event&)>;

/// The precision a workload's models run in (core/precision.h): `used` is what the
/// loaders get (never kAuto: resolve_precision decides it once), `requested` what the
/// user asked for; both are recorded (precision_json) in result.json / run.json.
struct ModelPrecision {
  Precision used = Precision::kFp32;
  Precision requested = Precision::kFp32;
};

/// An event about one item (kind, position, name, its line).
inline Event item_event(Event::Kind kind, size_t index, size_t total, std::string item, std::string message) {
  Event e;
  e.kind = kind;
  e.index = index;
  e.total = total;
  e.item = std::move(item);
  e.message = std::move(message);
  return e;
}

/// Calls `sink` when it is set.
inline void emit(const EventSink& sink, const Event& event) {
  if (sink) sink(event);
}

}  // namespace nephroseg::workloads
