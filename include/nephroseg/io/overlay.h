// nephroseg/io/overlay.h: drawing helpers shared by every subcommand's pictures.
//
// All images are CV_8UC3 **RGB** (the library convention); colours are Rgb. The
// helpers draw in place on the image passed in.
#pragma once

#include <opencv2/core/mat.hpp>
#include <opencv2/core/types.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace nephroseg::io {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};

namespace colors {
inline constexpr Rgb kRed{230, 25, 75};
inline constexpr Rgb kGreen{60, 180, 75};
inline constexpr Rgb kBlue{0, 130, 200};
inline constexpr Rgb kYellow{255, 225, 25};
inline constexpr Rgb kMagenta{240, 50, 230};
inline constexpr Rgb kCyan{70, 240, 240};
inline constexpr Rgb kOrange{245, 130, 48};
inline constexpr Rgb kWhite{255, 255, 255};
inline constexpr Rgb kBlack{0, 0, 0};
}  // namespace colors

/// A distinct colour for object index i (cycles through a 10-colour palette).
Rgb palette_color(int i);

/// Any 8-bit grey/RGB/RGBA image (or an empty Mat with `size`) -> a fresh CV_8UC3 RGB
/// canvas to draw on. 16-bit/float inputs are scaled min..max.
cv::Mat to_canvas(const cv::Mat& image, cv::Size size = {});

/// Blends `color` into the pixels where mask != 0: out = (1-alpha) * in + alpha * color.
void tint_mask(cv::Mat& rgb, const cv::Mat& mask, Rgb color, double alpha = 0.35);
/// Draws the outline of the mask's regions (outer boundaries and holes).
void draw_mask_contour(cv::Mat& rgb, const cv::Mat& mask, Rgb color, int thickness = 1);
/// tint_mask + draw_mask_contour on a copy of `image` (converted with to_canvas).
cv::Mat overlay_mask(const cv::Mat& image, const cv::Mat& mask, Rgb color, double alpha = 0.35,
                     int contour_thickness = 1);

/// Points with optional text labels (e.g. "+"/"-" prompts or indices). radius in px.
/// labels may be empty or one per point; colors empty (all `color`) or one per point.
void draw_points(cv::Mat& rgb, const std::vector<cv::Point2f>& points,
                 const std::vector<std::string>& labels = {}, Rgb color = colors::kYellow,
                 int radius = 4, const std::vector<Rgb>& colors = {});
/// How draw_prompts marks point prompts.
struct PromptMarkers {
  Rgb positive = colors::kGreen;
  Rgb negative = colors::kRed;
  int radius = 4;                 ///< px on the canvas
  bool signs = false;             ///< "+" / "-" text next to each marker
  bool negatives_on_top = false;  ///< draw the negatives last (default: the positives)
};

/// Point prompts of a segmenter (labels 1 = positive, 0 = negative, one per point) given
/// in a working frame (e.g. the S x S image GBMSeg segments), scaled by (sx, sy) to the
/// canvas: point (x, y) is drawn at (x * sx, y * sy). One call draws both kinds.
void draw_prompts(cv::Mat& rgb, const std::vector<cv::Point2f>& points, const std::vector<int>& labels,
                  double sx, double sy, const PromptMarkers& markers = {});

/// Text with a dark backing box for legibility; `origin` is the top-left corner.
void draw_text(cv::Mat& rgb, const std::string& text, cv::Point origin, Rgb color = colors::kWhite,
               double scale = 0.5, bool backing = true);
/// Line segment (anti-aliased).
void draw_segment(cv::Mat& rgb, cv::Point2f a, cv::Point2f b, Rgb color, int thickness = 1);

/// Resizes so the longer side is at most max_side (INTER_AREA); unchanged if smaller.
cv::Mat fit_within(const cv::Mat& image, int max_side);

}  // namespace nephroseg::io
