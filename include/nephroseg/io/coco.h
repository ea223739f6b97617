// nephroseg/io/coco.h: COCO run-length encoded masks and COCO JSON files.
//
// RLE as COCO (pycocotools) stores it: the mask is read in **column-major** order
// (down the first column, then the next, ...), counts alternate background and
// foreground runs and always start with a background run (0 when the first pixel is
// foreground). `size` is [height, width].
// Compressed form: the counts string of pycocotools' compressed RLE (each count
// minus the count two places before it, from the fourth on, written as 5-bit groups
// with a continuation bit, offset by 48 into printable ASCII).
//
// COCO files: {"images": [{id, file_name, width, height}], "annotations": [{id,
// image_id, category_id, segmentation: {size, counts}, area, bbox [x,y,w,h],
// iscrowd: 0}], "categories": [{id, name}]} with one annotation per object (label).
// iscrowd is 0: COCO evaluation ignores crowd regions, and RLE is legal for
// non-crowd annotations.
#pragma once

#include <opencv2/core/mat.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace nephroseg::io {

struct CocoRle {
  int height = 0;
  int width = 0;
  std::vector<uint32_t> counts;  // alternating runs, starting with background
};

/// Column-major RLE of a binary mask (non-zero = foreground).
CocoRle rle_encode(const cv::Mat& mask);
/// Back to a CV_8UC1 0/255 mask. Throws if the counts do not add up to height*width.
cv::Mat rle_decode(const CocoRle& rle);
/// pycocotools' compressed counts string.
std::string rle_counts_to_string(const std::vector<uint32_t>& counts);
std::vector<uint32_t> rle_counts_from_string(const std::string& s);
/// Area (foreground pixels) straight from the runs.
double rle_area(const CocoRle& rle);

struct CocoImage {
  std::string file_name;
  cv::Mat labels;  ///< CV_32S instance labels (0 = background); one annotation per label
};

struct CocoWriteOptions {
  std::string category_name = "object";
  int category_id = 1;
  bool compressed = false;  ///< counts as string (true) or as a list of integers (false)
};

/// Writes images and their objects as one COCO JSON file, atomically.
void write_coco(const std::string& path, const std::vector<CocoImage>& images,
                const CocoWriteOptions& options = {});
/// Reads a COCO JSON file with RLE (list or string counts) or polygon segmentations
/// (polygons are filled at pixel centres). Each image's annotations become labels
/// 1..N in file order.
std::vector<CocoImage> read_coco(const std::string& path);

}  // namespace nephroseg::io
