// nephroseg/slide/tissue.h: the low-resolution view of a slide, the channel mapping
// to RGB, the tissue mask and the tile plan.
//
// Everything here works on a bounded thumbnail (longest side <= max_side, read by
// regions from the coarsest level), never on a whole level.
#pragma once

#include <opencv2/core/mat.hpp>
#include <opencv2/core/types.hpp>

#include <string>
#include <vector>

#include "nephroseg/io/image.h"
#include "nephroseg/slide/reader.h"

namespace nephroseg::slide {

struct Thumbnail {
  cv::Mat raw;            ///< stored samples (native depth, every channel)
  double scale_l0 = 1.0;  ///< level-0 pixels per thumbnail pixel (both axes)
};

/// Reads the slide at a scale with longest side <= max_side, region by region (blocks
/// of at most 2048 x 2048 pixels of the coarsest level that is still >= the target).
Thumbnail read_thumbnail(SlideReader& reader, int max_side = 2048);

/// The RGB mapping of io::to_rgb8 (image.h) with its windows fixed once per slide:
/// source channel and [lo, hi] per output plane. Percentile windows are taken from
/// the thumbnail, so every tile of a slide is mapped identically.
struct ChannelMap {
  int src[3] = {0, 1, 2};  ///< source channel per R, G, B; -1 = black
  double lo[3] = {0, 0, 0};
  double hi[3] = {255, 255, 255};
  /// CV_8UC3 RGB of a tile of stored samples.
  cv::Mat apply(const cv::Mat& raw) const;
};

/// Resolves options.channels / window against a thumbnail (validates channel
/// indices: "channel 4 requested but the slide has 3 channel(s)").
ChannelMap make_channel_map(const Thumbnail& thumb, const io::ImageReadOptions& options);

/// Foreground signal for detection, CV_8UC1: brightfield = 255 - luminance (dark
/// tissue is high), fluorescence = luminance of the mapped RGB (bright signal high).
cv::Mat foreground_signal(const cv::Mat& rgb8, bool brightfield);

enum class TissueMode { kAuto, kNone };

struct TissueOptions {
  TissueMode mode = TissueMode::kAuto;
  double min_speck_um2 = 5000.0;  ///< tissue pieces smaller than this are dropped
  double smooth_um = 8.0;         ///< Gaussian on the signal before Otsu
};

/// CV_8UC1 0/255 at thumbnail size: Otsu on log(1 + smoothed foreground signal) (the
/// log scale makes Otsu split background from tissue, not tissue from bright objects), holes
/// filled, specks below min_speck_um2 dropped. kNone: everything is tissue.
/// mpp_l0: level-0 µm per pixel (for the speck size).
cv::Mat detect_tissue(const cv::Mat& signal, double scale_l0, double mpp_l0, const TissueOptions& options);

/// One tile of the plan, in pixels of the work grid (the resolution the segmenter
/// runs at). `core` tiles partition the processed area; `read` = core + halo,
/// clipped to the slide.
struct Tile {
  int index = 0;  ///< raster index in the full grid (row * cols + col)
  int row = 0, col = 0;
  cv::Rect core;
  cv::Rect read;
};

struct TilePlan {
  cv::Size work_size;   ///< slide size in work pixels
  cv::Rect area;        ///< processed area (the ROI, or the whole slide), work pixels
  int tile = 1024, halo = 128;
  int rows = 0, cols = 0;   ///< grid over `area`, stride tile - 2 * halo
  std::vector<Tile> tiles;  ///< only tiles whose core touches tissue, raster order
  int grid_tiles() const { return rows * cols; }
};

/// Grid of cores (tile - 2*halo) over area; a tile is kept when its core touches a
/// tissue pixel of `tissue` (thumbnail scale; work_to_thumb = thumbnail px per work px).
TilePlan plan_tiles(cv::Size work_size, const cv::Rect& area, int tile, int halo, const cv::Mat& tissue,
                    double work_to_thumb);

}  // namespace nephroseg::slide
