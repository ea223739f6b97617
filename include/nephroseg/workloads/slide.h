// nephroseg/workloads/slide.h: whole slides, one file or a folder of them (`nephroseg
// slide`, Python's run_slides): tissue, tiles, glomeruli, stitching, and the streamed
// outputs of slide::run_slide (GeoJSON, TSV, OME-TIFF labels) per slide.
//
//   workloads::SlideBatchOptions o;
//   o.slide = "slides/";  o.out_dir = "out";
//   o.segmenter.name = "glomsam";  o.segmenter.checkpoint = "best.pth";
//   workloads::run_slide_batch(o, sink);
//
// The segmenter is made once for every slide (slide::make_segmenter), before anything
// is written. Tile: a model segmenter sees core + halo, so unless tile_from_model is
// false the tile core is the model's input side - 2 x halo; the weight-free segmenter
// keeps run.tile. A folder's slides (slide::is_slide_file) are taken in name order,
// each into out_dir/<stem>/; one slide writes into out_dir itself. A folder or a shard
// keeps out_dir/run.json (run.shard-K-of-N.json; command "slide"); a rerun resumes each
// slide from its finished tiles.
//
// Events: kProgress per tile (index = tiles done, total = tiles planned; item = the
// slide's stem), kItemFinished per slide (its one-line summary; Event::detail = `const
// slide::SlideRunResult*`). Thread safety: one run per out_dir at a time.
#pragma once

#include <string>

#include "nephroseg/core/shard.h"
#include "nephroseg/slide/model_segmenter.h"
#include "nephroseg/slide/run.h"
#include "nephroseg/workloads/workload.h"

namespace nephroseg::workloads {

struct SlideBatchOptions {
  std::string slide;               ///< a slide file or a folder of slides
  std::string out_dir;             ///< created when missing
  slide::SegmenterSpec segmenter;  ///< classical (default) | glomsam | sam | medsam
  slide::SlideRunOptions run;      ///< resolution, tile, halo, tissue, ROI, filter, outputs
  bool tile_from_model = true;     ///< model segmenters: tile = input side - 2 x halo
  Shard shard;                     ///< splits a folder's slides (whole batch by default)
};

struct SlideBatchResult {
  size_t inputs_total = 0;                    ///< slides of the folder (1 for a file)
  std::vector<slide::SlideRunResult> slides;  ///< this process's slides, in order
  int tile = 0;                               ///< the tile core side used
  std::string run_json;                       ///< "" for one slide run whole
};

/// Runs the batch (see the header comment); bad inputs throw before anything is written.
SlideBatchResult run_slide_batch(const SlideBatchOptions& options, const EventSink& events = {});

}  // namespace nephroseg::workloads
