#include "nephroseg/io/overlay.h"

#include <algorithm>
#include <opencv2/imgproc.hpp>

#include "nephroseg/core/error.h"

namespace nephroseg::io {

namespace {
cv::Scalar scalar(Rgb c) { return cv::Scalar(c.r, c.g, c.b); }
}  // namespace

Rgb palette_color(int i) {
  static const Rgb kPalette[] = {colors::kRed,    colors::kGreen,   colors::kBlue, colors::kYellow,
                                 colors::kMagenta, colors::kCyan,   colors::kOrange,
                                 Rgb{145, 30, 180}, Rgb{210, 245, 60}, Rgb{250, 190, 212}};
  const int n = static_cast<int>(sizeof(kPalette) / sizeof(kPalette[0]));
  return kPalette[((i % n) + n) % n];
}

cv::Mat to_canvas(const cv::Mat& image, cv::Size size) {
  if (image.empty()) {
    NEPHRO_CHECK(size.area() > 0, "to_canvas: no image and no size");
    return cv::Mat(size, CV_8UC3, cv::Scalar(0, 0, 0));
  }
  cv::Mat eight;
  if (image.depth() == CV_8U) {
    eight = image;
  } else {
    double lo = 0, hi = 0;
    cv::minMaxLoc(image.reshape(1), &lo, &hi);
    const double scale = hi > lo ? 255.0 / (hi - lo) : 1.0;
    image.convertTo(eight, CV_8U, scale, -lo * scale);
  }
  cv::Mat out;
  if (eight.channels() == 1) cv::cvtColor(eight, out, cv::COLOR_GRAY2RGB);
  else if (eight.channels() == 4) cv::cvtColor(eight, out, cv::COLOR_RGBA2RGB);
  else if (eight.channels() == 3) out = eight.clone();
  else NEPHRO_FAIL("to_canvas: unsupported channel count ", eight.channels());
  return out;
}

void tint_mask(cv::Mat& rgb, const cv::Mat& mask, Rgb color, double alpha) {
  NEPHRO_CHECK(rgb.type() == CV_8UC3, "tint_mask: needs an RGB canvas");
  NEPHRO_CHECK(mask.size() == rgb.size(), "tint_mask: mask size ", mask.cols, "x", mask.rows,
               " differs from image size ", rgb.cols, "x", rgb.rows);
  cv::Mat solid(rgb.size(), CV_8UC3, scalar(color)), blended;
  cv::addWeighted(rgb, 1.0 - alpha, solid, alpha, 0.0, blended);
  blended.copyTo(rgb, mask);
}

void draw_mask_contour(cv::Mat& rgb, const cv::Mat& mask, Rgb color, int thickness) {
  NEPHRO_CHECK(mask.size() == rgb.size(), "draw_mask_contour: mask size differs from image size");
  cv::Mat bin;
  cv::compare(mask, 0, bin, cv::CMP_NE);
  std::vector<std::vector<cv::Point>> contours;
  cv::findContours(bin, contours, cv::RETR_LIST, cv::CHAIN_APPROX_NONE);
  cv::drawContours(rgb, contours, -1, scalar(color), thickness, cv::LINE_8);
}

cv::Mat overlay_mask(const cv::Mat& image, const cv::Mat& mask, Rgb color, double alpha,
                     int contour_thickness) {
  cv::Mat canvas = to_canvas(image, mask.size());
  tint_mask(canvas, mask, color, alpha);
  if (contour_thickness > 0) draw_mask_contour(canvas, mask, color, contour_thickness);
  return canvas;
}

void draw_points(cv::Mat& rgb, const std::vector<cv::Point2f>& points,
                 const std::vector<std::string>& labels, Rgb color, int radius,
                 const std::vector<Rgb>& colors) {
  NEPHRO_CHECK(labels.empty() || labels.size() == points.size(), "draw_points: ", labels.size(),
               " labels for ", points.size(), " points");
  NEPHRO_CHECK(colors.empty() || colors.size() == points.size(), "draw_points: ", colors.size(),
               " colours for ", points.size(), " points");
  for (size_t i = 0; i < points.size(); ++i) {
    const Rgb c = colors.empty() ? color : colors[i];
    const cv::Point p(cvRound(points[i].x), cvRound(points[i].y));
    cv::circle(rgb, p, radius + 1, cv::Scalar(0, 0, 0), cv::FILLED, cv::LINE_AA);
    cv::circle(rgb, p, radius, scalar(c), cv::FILLED, cv::LINE_AA);
    if (!labels.empty() && !labels[i].empty())
      draw_text(rgb, labels[i], p + cv::Point(radius + 2, -radius - 2), c, 0.4, true);
  }
}

void draw_prompts(cv::Mat& rgb, const std::vector<cv::Point2f>& points, const std::vector<int>& labels,
                  double sx, double sy, const PromptMarkers& markers) {
  NEPHRO_CHECK(labels.size() == points.size(), "draw_prompts: ", labels.size(), " labels for ", points.size(),
               " points");
  std::vector<cv::Point2f> pos, neg;
  for (size_t i = 0; i < points.size(); ++i) {
    const cv::Point2f q(static_cast<float>(points[i].x * sx), static_cast<float>(points[i].y * sy));
    (labels[i] == 1 ? pos : neg).push_back(q);
  }
  const auto signs = [&](const std::vector<cv::Point2f>& p, const char* sign) {
    return markers.signs ? std::vector<std::string>(p.size(), sign) : std::vector<std::string>();
  };
  if (markers.negatives_on_top) {
    draw_points(rgb, pos, signs(pos, "+"), markers.positive, markers.radius);
    draw_points(rgb, neg, signs(neg, "-"), markers.negative, markers.radius);
  } else {
    draw_points(rgb, neg, signs(neg, "-"), markers.negative, markers.radius);
    draw_points(rgb, pos, signs(pos, "+"), markers.positive, markers.radius);
  }
}

void draw_text(cv::Mat& rgb, const std::string& text, cv::Point origin, Rgb color, double scale,
               bool backing) {
  int baseline = 0;
  const int font = cv::FONT_HERSHEY_SIMPLEX;
  const int thickness = scale >= 0.8 ? 2 : 1;
  const cv::Size size = cv::getTextSize(text, font, scale, thickness, &baseline);
  if (backing)
    cv::rectangle(rgb, origin - cv::Point(2, 2),
                  origin + cv::Point(size.width + 2, size.height + baseline + 2),
                  cv::Scalar(20, 20, 20), cv::FILLED);
  cv::putText(rgb, text, origin + cv::Point(0, size.height), font, scale, scalar(color), thickness,
              cv::LINE_AA);
}

void draw_segment(cv::Mat& rgb, cv::Point2f a, cv::Point2f b, Rgb color, int thickness) {
  // 4 bits of sub-pixel precision keeps short chords where they are.
  constexpr int kShift = 4;
  const float s = 1 << kShift;
  cv::line(rgb, cv::Point(cvRound(a.x * s), cvRound(a.y * s)), cv::Point(cvRound(b.x * s), cvRound(b.y * s)),
           scalar(color), thickness, cv::LINE_AA, kShift);
}

cv::Mat fit_within(const cv::Mat& image, int max_side) {
  const int side = std::max(image.cols, image.rows);
  if (side <= max_side || side == 0) return image.clone();
  const double f = static_cast<double>(max_side) / side;
  cv::Mat out;
  cv::resize(image, out, cv::Size(std::max(1, cvRound(image.cols * f)), std::max(1, cvRound(image.rows * f))),
             0, 0, cv::INTER_AREA);
  return out;
}

}  // namespace nephroseg::io
