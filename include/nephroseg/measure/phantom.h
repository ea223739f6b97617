// nephroseg/measure/phantom.h: synthetic TEM-like images of glomerular basement
// membranes with known thickness, for testing the thickness estimators and as demo
// inputs (e.g. a reference image + mask and target images from other seeds).
//
// Definition of the true thickness: every membrane is a band around a smooth centre
// curve C; a point belongs to the membrane when its distance to C is at most t/2.
// The band's width measured perpendicular to C is therefore exactly t everywhere
// (curvature radii are kept >= 1.5 t, so the band never folds over itself). The mask
// marks pixels whose *centre* lies in a band (0/255). The sections are, in effect,
// cut perpendicular to the membrane: a 2-D minimal chord equals t, and no 3-D
// obliquity correction applies (see thickness.h).
//
// The image: textured cytoplasm background, membranes drawn with anti-aliased
// coverage and a denser lamina densa, foot-process bumps on one side, Gaussian blur
// and Gaussian noise. Deterministic for a given seed (own RNG, no std::
// distributions).
#pragma once

#include <opencv2/core/mat.hpp>
#include <opencv2/core/types.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace nephroseg::measure {

enum class PhantomShape {
  kMixed,     ///< a random mix of the shapes below
  kStraight,  ///< straight bands
  kArc,       ///< circular arcs (constant curvature)
  kWave,      ///< sinusoidal bands (varying curvature)
  kLoop,      ///< closed capillary-loop-like curves
};

struct PhantomOptions {
  uint64_t seed = 0;
  int size = 512;                   ///< width = height in pixels
  double thickness_px = 20.0;       ///< true membrane thickness t
  double nm_per_pixel = 16.0;       ///< calibration written with the phantom (20 px -> 320 nm)
  PhantomShape shape = PhantomShape::kMixed;
  int num_membranes = 3;
  double min_radius_px = 0.0;       ///< smallest radius of curvature; 0 = 4 x thickness
  double orientation_deg = -1.0;    ///< main direction of straight/wave bands; < 0 = random
  bool touching = false;            ///< add a band touching another one (merged in the mask)
  bool branching = false;           ///< add a branch leaving another band (Y junction)
  bool texture = true;              ///< background texture and foot processes
  double blur_sigma_px = 1.2;       ///< optical blur of the image (not the mask)
  double noise_sigma = 10.0;        ///< Gaussian noise, grey levels
};

struct Phantom {
  cv::Mat image;                    ///< CV_8UC1 grey
  cv::Mat mask;                     ///< CV_8UC1 0/255
  double true_thickness_px = 0.0;
  double nm_per_pixel = 0.0;
  double true_thickness_nm() const { return true_thickness_px * nm_per_pixel; }
  /// Centre curves (pixel-centre coordinates), one polyline per membrane.
  std::vector<std::vector<cv::Point2d>> centre_lines;
  /// Centre-line points where bands touch or branch (their surroundings are not
  /// constant-width).
  std::vector<cv::Point2d> contact_points;
};

/// Draws one phantom. Throws nephroseg::Error for size < 64, thickness < 2 px or
/// > size / 6, nm_per_pixel <= 0.
Phantom generate_phantom(const PhantomOptions& options);

/// "mixed", "straight", "arc", "wave", "loop" <-> enum (throws on unknown names).
PhantomShape parse_phantom_shape(const std::string& name);
std::string phantom_shape_name(PhantomShape shape);

}  // namespace nephroseg::measure
