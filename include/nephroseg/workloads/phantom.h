// nephroseg/workloads/phantom.h: a set of synthetic TEM-like GBM images with masks of
// known thickness (`nephroseg phantom`): test data for gbmseg, measure and eval.
//
//   workloads::PhantomSetOptions o;  o.out_dir = "phantoms";  o.count = 20;
//   workloads::write_phantom_set(o, sink);
//
// Files in out_dir (each atomic): images/<prefix>_<seed>.png, masks/<prefix>_<seed>.png
// (0/255), truth.csv (name, seed, true_thickness_px, nm_per_pixel, true_thickness_nm,
// shape, membranes, contacts) and truth.json (the same plus the definition of the
// thickness). Phantom i has seed phantom.seed + i (measure/phantom.h).
//
// Events: kInfo at the end ("wrote N phantom(s) to OUT (...)"). Thread safety: one
// writer per out_dir.
#pragma once

#include <string>

#include "nephroseg/measure/phantom.h"
#include "nephroseg/workloads/workload.h"

namespace nephroseg::workloads {

struct PhantomSetOptions {
  std::string out_dir;                ///< created when missing
  int count = 1;                      ///< 1 .. 10,000
  std::string prefix = "phantom";     ///< file name prefix: a plain name, no folder
  measure::PhantomOptions phantom;    ///< the first phantom's options (seed, size, shape, ...)
};

/// Writes the set; returns the number of phantoms written. Bad options throw
/// nephroseg::Error before anything is written.
int write_phantom_set(const PhantomSetOptions& options, const EventSink& events = {});

}  // namespace nephroseg::workloads
