// nephroseg/workloads/measure.h: `nephroseg measure` over one mask or a folder of masks,
// whole or as one shard of a job array, and the merge of a sharded run.
//
// Inputs: --mask FILE|DIR, optional --image FILE|DIR (paired by stem). Every input of
// this shard is read and checked before anything is written (a bad mask, a missing
// image or an unknown pixel size stops the run with one error naming the file).
// Pixel size: "auto" = the calibration of the image (else of the mask): DM, OME-XML,
// ImageJ or TIFF resolution; a number overrides it (a > 1 % disagreement with the
// file is a warning). Its source is recorded per image.
//
// Files (measure/report.h for the per-image four): summary.csv, summary.json and
// run.json for a whole batch; summary.shard-K-of-N.csv/.json and run.shard-K-of-N.json
// for shard K of N (core/batch_record.h). merge_measure_shards() writes the summary.csv,
// summary.json and run.json a single process writes (the same rows, byte for byte).
//
//   MeasureBatchOptions o; o.mask = "masks/"; o.range = measure::find_reference_range("...");
//   o.out_dir = "out/";
//   MeasureBatchResult r = run_measure_batch(o, sink);
//
// Thread safety: one batch per output folder at a time (shards: one per K).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <functional>
#include <string>
#include <vector>

#include "nephroseg/core/shard.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/measure/pixel_size.h"
#include "nephroseg/measure/reference.h"
#include "nephroseg/measure/thickness.h"
#include "nephroseg/workloads/workload.h"

namespace nephroseg::workloads {

struct MeasureBatchOptions {
  std::string mask;                     ///< mask file or folder (non-zero = membrane)
  std::string image;                    ///< "" or image file / folder (same stems)
  std::string nm_per_pixel = "auto";    ///< "auto" or a positive number (nm per pixel)
  measure::ReferenceRange range;        ///< the classification range
  measure::ThicknessOptions thickness;  ///< nm_per_pixel is set per image
  io::MaskReadOptions mask_read;
  Shard shard;                          ///< whole batch by default
  std::string out_dir;                  ///< created when missing
};

struct MeasureBatchResult {
  std::vector<std::string> names;  ///< this shard's images, input order
  std::vector<measure::ThicknessResult> results;
  std::vector<std::string> calibration_sources;  ///< "option", "dm", "ome-xml", ...
  size_t files_written = 0;
  std::string summary_csv, run_json;
};

/// Runs the batch. Events: kWarning (pixel-size disagreements), kItemFinished per image
/// once measured (its one-line result; Event::detail = `const measure::ThicknessResult*`).
MeasureBatchResult run_measure_batch(const MeasureBatchOptions& options, const EventSink& events = {});

struct MeasureMergeResult {
  int shards = 0;
  size_t inputs = 0;
  std::string summary_csv, run_json;
};

/// Combines the shards of a `measure --shard` run in out_dir (see the header comment).
MeasureMergeResult merge_measure_shards(const std::string& out_dir);

}  // namespace nephroseg::workloads
