// nephroseg/slide/run.h: a whole slide, end to end, in bounded memory.
//
//   auto seg = slide::make_segmenter("classical");
//   slide::SlideRunOptions opt;           // 1024 px tiles, 128 px halo, tissue auto
//   slide::SlideRunResult r = slide::run_slide("x.svs", "out/", *seg, opt);
//
// Steps: open the slide (reader.h); choose the work resolution (--mpp, or
// --magnification, or a --level, default level 0); read a bounded thumbnail; map
// channels to RGB (tissue.h); detect tissue; plan tiles (core + halo) over the ROI;
// prepare the segmenter on the thumbnail; then for every tissue tile not yet done:
// read its region, segment it, label the connected components of its *core* and
// record them (tiles/<index>.png + tiles/<index>.json, each atomic). When every tile
// is recorded, stitch and write the outputs.
//
// Stitching rule (one owner per pixel, union-find across borders): cores partition the
// processed area, so every object pixel belongs to exactly one tile. Two components of
// neighbouring cores are the same object when any of their pixels are 8-adjacent
// across the shared core edge or corner; union-find over (tile, component) joins them
// whatever their size, so an object larger than the halo, or than a tile, still comes
// out whole and once. The halo only gives the segmenter context: the classical
// detector's background and threshold are global (detector.h), and its fine-scale
// filters and morphology reach less than the halo, so the two tiles of a border agree
// on the pixels near it and no seam appears. What the halo bounds is the context, not
// the object size: a segmenter whose decision depends on more than `halo` pixels of
// context may disagree with its neighbour near a core edge; the union is then kept
// (the object is whole, its outline may show a step at the core edge).
// Size and shape filters (ObjectFilter) are applied to whole stitched objects; objects
// wholly inside one core are filtered by area already in the tile.
//
// Outputs in out_dir (level-0 pixel coordinates unless stated):
//   objects.geojson   QuPath FeatureCollection (objectType, classification, measurements)
//   objects.tsv       QuPath measurement-export columns first, then ours
//   labels.ome.tif    uint32 instance ids at the work resolution, tiled 256 px, deflate,
//                     pyramid as SubIFDs (nearest), BigTIFF when over 2 GiB raw,
//                     OME-XML PhysicalSizeX/Y in µm
//   thumbnail.png     the thumbnail (<= 1024 px), processed tile cores, object outlines
//   run.json          slide, levels, mpp, tiles, tissue fraction, segmenter, counts,
//                     timings (written last: its presence marks a finished run)
// Resume: a rerun with the same options skips recorded tiles; the outputs are a pure
// function of the tile records, so they are byte-identical to an uninterrupted run
// (run.json too, except its "timings_s" object). A rerun with different options into
// the same folder is refused.
// Memory: see docs/slide.md (independent of slide size: thumbnail <= 2048^2, one tile,
// a bounded label cache, plus a few bytes per detected component and tissue tile).
#pragma once

#include <opencv2/core/types.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nephroseg/core/enum_names.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/overlay.h"
#include "nephroseg/slide/detector.h"
#include "nephroseg/slide/tissue.h"

namespace nephroseg::slide {

enum class ObjectType { kAnnotation, kDetection };
const EnumNames<ObjectType>& object_type_names();
const EnumNames<TissueMode>& tissue_mode_names();

struct ObjectFilter {
  double min_area_um2 = 2000.0;    ///< ~50 µm diameter
  double max_area_um2 = 250000.0;  ///< ~560 µm diameter
  double min_solidity = 0.75;
  double min_circularity = 0.25;   ///< 4 pi A / P^2 of the outer outline
};

struct SlideRunOptions {
  double mpp = 0.0;            ///< work resolution (µm/px); 0 = from magnification/level
  double magnification = 0.0;  ///< e.g. 20 -> mpp0 * objective / 20 (or 10 / 20 µm/px)
  int level = -1;              ///< work at this level's resolution (-1 = level 0)
  int tile = 1024;
  int halo = 128;
  TissueOptions tissue;
  bool has_roi = false;
  cv::Rect roi;                ///< level-0 pixels
  io::ImageReadOptions channels;
  ObjectType object_type = ObjectType::kAnnotation;
  ObjectFilter filter;
  std::string class_name = "Glomerulus";
  io::Rgb color{230, 25, 75};
  int thumbnail_side = 2048;
  /// labels.ome.tif at level 0 (true: every level-0 pixel takes the label of the work
  /// pixel that covers its centre, so the label image lines up with the slide and the
  /// GeoJSON) or at the work resolution (false: smaller when the work is coarser).
  bool labels_at_level0 = true;
  /// Stop after this many newly processed tiles (>= 0; -1 = run to the end): the
  /// outputs are not written, as if the run had been killed (for resume tests).
  int stop_after_tiles = -1;
  /// Called after every tile with (tiles done, tiles total), from the calling thread.
  std::function<void(int, int)> progress;
};

struct SlideObject {
  int id = 0;
  double centroid_x = 0, centroid_y = 0;  ///< level-0 pixels (pixel centres at +0.5)
  double area_um2 = 0, perimeter_um = 0, equivalent_diameter_um = 0, solidity = 0, score = 0;
  cv::Rect bbox_l0;
};

struct SlideRunResult {
  bool complete = false;   ///< false when stop_after_tiles stopped it
  int tiles_total = 0;     ///< tissue tiles planned
  int tiles_grid = 0;      ///< tiles of the whole grid
  int tiles_processed = 0; ///< processed by this call
  int tiles_resumed = 0;   ///< found recorded
  double tissue_fraction = 0;
  double work_mpp = 0;
  int components = 0;      ///< stitched objects before the filters
  std::vector<SlideObject> objects;
};

/// Runs the whole pipeline (see the top of this file). Throws nephroseg::Error for
/// bad input (slide, level, ROI, missing mpp, channels) before anything is written.
SlideRunResult run_slide(const std::string& slide_path, const std::string& out_dir, TileSegmenter& segmenter,
                         const SlideRunOptions& options = {});

/// The segmenter named `name` (classical, glomsam, sam, medsam with their default
/// configs); checkpoint is for the model segmenters. See slide/model_segmenter.h.
std::unique_ptr<TileSegmenter> make_segmenter(const std::string& name, const std::string& checkpoint = {});

}  // namespace nephroseg::slide
