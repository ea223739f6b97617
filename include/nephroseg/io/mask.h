// nephroseg/io/mask.h: binary masks and instance label images.
//
// Binary masks are CV_8UC1 with values 0 (background) and 255 (foreground).
// Instance label images are CV_32SC1: 0 = background, 1..N = objects.
//
// Mask reading rule (read_mask):
//   * MaskReadOptions::channel = -1 (default): a pixel is foreground when ANY channel
//     of the stored samples is non-zero. This reads 0/255 grey masks, 0/1 masks,
//     label images, and coloured masks such as red (255,0,0)-on-black alike.
//   * channel = c >= 0: foreground when channel c (file order: R=0, G=1, B=2) is
//     greater than `threshold` (default 127, in raw units of the file).
//   An alpha channel is treated like any other channel under the default rule.
#pragma once

#include <opencv2/core/mat.hpp>

#include <string>

namespace nephroseg::io {

struct MaskReadOptions {
  int channel = -1;      ///< -1 = any channel non-zero; else this channel > threshold
  double threshold = 127;
  int page = 0;          ///< TIFF page
};

/// Reads a mask file (PNG, JPEG, TIFF) into CV_8UC1 0/255 by the rule above.
/// Throws nephroseg::Error naming the file when unreadable or the channel is absent.
cv::Mat read_mask(const std::string& path, const MaskReadOptions& options = {});
/// Binarises an already-loaded image by the same rule.
cv::Mat binarize_mask(const cv::Mat& raw, const MaskReadOptions& options = {});
/// Writes a binary PNG (any non-zero -> 255), atomically.
void write_mask_png(const std::string& path, const cv::Mat& mask);

/// Connected components of a binary mask (non-zero = foreground) -> CV_32SC1 labels
/// numbered 1..N in raster order of their first pixel. connectivity 4 or 8.
cv::Mat label_instances(const cv::Mat& mask, int connectivity = 8);
/// Non-zero labels -> 0/255 CV_8UC1.
cv::Mat labels_to_mask(const cv::Mat& labels);
/// Largest label value of a CV_32S label image (0 when empty).
int max_label(const cv::Mat& labels);

/// Writes an instance label image as a single-page greyscale TIFF (deflate),
/// atomically. bits = 16 (labels must be <= 65535) or 32 (unsigned 32-bit).
void write_label_tiff(const std::string& path, const cv::Mat& labels, int bits = 16);
/// Reads a label TIFF/PNG (8/16/32-bit single channel) into CV_32SC1.
cv::Mat read_label_image(const std::string& path, int page = 0);

}  // namespace nephroseg::io
