// nephroseg/slide/detector.h: segmenters that run on slide tiles, and the weight-free
// classical glomerulus detector.
//
// A TileSegmenter turns one RGB tile (work resolution, core + halo) into a binary
// object mask. It is prepared once per slide from the thumbnail, so that any global
// quantity (threshold, background) is the same for every tile: the masks of two
// overlapping tiles then agree on their common pixels, which is what lets the
// stitcher (run.h) join objects across tile borders without seams.
//
// ClassicalDetector (after Govind et al. 2018, band-pass + threshold + morphology +
// size and shape filters). With f the foreground signal (slide::foreground_signal):
//   1. band-pass b = G(sigma_fine) * f - B, with the background B = G(sigma_background)
//      * opening(f, disc of background_radius_um): a rolling-ball background that
//      removes objects narrower than the disc (a plain wide Gaussian would sink the
//      centre of a 250 µm glomerulus). B is computed once on the thumbnail (on a grid
//      where sigma_background is 4 px) and sampled bilinearly at global coordinates,
//      so it is identical in every tile;
//   2. threshold T = max(min_contrast, midpoint of the two class means of Otsu's split
//      of b over the thumbnail's tissue);
//      object pixels b > T;
//   3. opening then closing with discs of open_radius_um / close_radius_um; holes
//      smaller than max_hole_um2 that do not touch the tile edge are filled;
//   4. size and shape filters are applied to whole (stitched) objects by the runner
//      (ObjectFilter in run.h), because a tile sees only part of a large object.
// Per-pixel score: min(1, b / (2 T)) clamped at 0; an object's score is its mean.
// All lengths are in µm, so the detector runs at any resolution.
// Thread-safety: prepare() once, then segment() is const and reentrant.
#pragma once

#include <opencv2/core/mat.hpp>
#include <opencv2/core/types.hpp>

#include <memory>
#include <string>

namespace nephroseg::slide {

/// What a segmenter sees of the slide once, before any tile.
struct SlideContext {
  cv::Mat thumb_signal;  ///< CV_8UC1 foreground signal of the thumbnail
  cv::Mat tissue;        ///< CV_8UC1 0/255 tissue mask, thumbnail size
  double work_to_thumb = 1.0;  ///< thumbnail pixels per work pixel
  double work_mpp = 0.5;       ///< µm per work pixel
  bool brightfield = true;
};

struct TileMask {
  cv::Mat mask;   ///< CV_8UC1 0/255, the read rectangle's size
  cv::Mat score;  ///< CV_32FC1 in [0, 1], same size (empty = score 1)
};

class TileSegmenter {
 public:
  virtual ~TileSegmenter() = default;
  virtual std::string name() const = 0;
  /// The options as a JSON object text (recorded in run.json and in the resume key).
  virtual std::string config_json() const = 0;
  virtual void prepare(const SlideContext& context) = 0;
  /// rgb: CV_8UC3 tile; origin: its top-left corner in work pixels.
  virtual TileMask segment(const cv::Mat& rgb, cv::Point origin) const = 0;
  /// The side of the model's input in pixels (model segmenters), 0 when any tile size
  /// suits (classical).
  virtual int input_side() const { return 0; }
};

struct ClassicalDetectorOptions {
  double sigma_fine_um = 2.0;
  double background_radius_um = 160.0;  ///< opening disc: wider than the largest glomerulus
  double sigma_background_um = 30.0;
  double min_contrast = 12.0;      ///< floor of T (grey levels of the 8-bit signal)
  double open_radius_um = 4.0;
  double close_radius_um = 4.0;
  double max_hole_um2 = 2000.0;
};

class ClassicalDetector : public TileSegmenter {
 public:
  explicit ClassicalDetector(ClassicalDetectorOptions options = {}) : options_(options) {}
  std::string name() const override { return "classical"; }
  std::string config_json() const override;
  void prepare(const SlideContext& context) override;
  TileMask segment(const cv::Mat& rgb, cv::Point origin) const override;
  double threshold() const { return threshold_; }

 private:
  ClassicalDetectorOptions options_;
  SlideContext context_;
  cv::Mat background_;          ///< CV_32F, coarse grid
  double work_to_coarse_ = 1.0;  ///< coarse pixels per work pixel
  double threshold_ = 0.0;
};

}  // namespace nephroseg::slide
