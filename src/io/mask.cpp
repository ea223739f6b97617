#include "nephroseg/io/mask.h"

#include <cmath>
#include <tiffio.h>

#include <opencv2/imgproc.hpp>

#include "nephroseg/core/error.h"
#include "nephroseg/core/atomic_file.h"
#include "nephroseg/io/image.h"

namespace nephroseg::io {

cv::Mat binarize_mask(const cv::Mat& raw, const MaskReadOptions& options) {
  NEPHRO_CHECK(!raw.empty(), "binarize_mask: empty image");
  cv::Mat out;
  if (options.channel < 0) {
    std::vector<cv::Mat> planes;
    cv::split(raw, planes);
    out = cv::Mat::zeros(raw.size(), CV_8U);
    for (const cv::Mat& p : planes) {
      cv::Mat nz;
      cv::compare(p, 0, nz, cv::CMP_NE);
      out |= nz;
    }
    return out;
  }
  NEPHRO_CHECK(options.channel < raw.channels(), "mask channel ", options.channel,
               " requested but the mask has ", raw.channels(), " channel(s)");
  NEPHRO_CHECK(!std::isnan(options.threshold), "mask threshold must be a number (got nan)");
  cv::Mat plane, f;
  cv::extractChannel(raw, plane, options.channel);
  plane.convertTo(f, CV_64F);
  cv::compare(f, options.threshold, out, cv::CMP_GT);
  return out;
}

cv::Mat read_mask(const std::string& path, const MaskReadOptions& options) {
  cv::Mat raw = read_image_raw(path, options.page);
  try {
    return binarize_mask(raw, options);
  } catch (const Error& e) {
    NEPHRO_FAIL("mask '", path, "': ", e.what());
  }
}

void write_mask_png(const std::string& path, const cv::Mat& mask) {
  NEPHRO_CHECK(!mask.empty() && mask.channels() == 1, "write_mask_png: '", path,
               "' needs a non-empty single-channel mask");
  cv::Mat bin;
  cv::compare(mask, 0, bin, cv::CMP_NE);
  write_png(path, bin);
}

cv::Mat label_instances(const cv::Mat& mask, int connectivity) {
  NEPHRO_CHECK(connectivity == 4 || connectivity == 8, "connectivity must be 4 or 8, got ", connectivity);
  NEPHRO_CHECK(!mask.empty() && mask.channels() == 1, "label_instances: needs a single-channel mask");
  cv::Mat bin, labels;
  cv::compare(mask, 0, bin, cv::CMP_NE);
  cv::connectedComponents(bin, labels, connectivity, CV_32S);
  return labels;
}

cv::Mat labels_to_mask(const cv::Mat& labels) {
  cv::Mat out;
  cv::compare(labels, 0, out, cv::CMP_NE);
  return out;
}

int max_label(const cv::Mat& labels) {
  if (labels.empty()) return 0;
  double lo = 0, hi = 0;
  cv::minMaxLoc(labels, &lo, &hi);
  return static_cast<int>(hi);
}

void write_label_tiff(const std::string& path, const cv::Mat& labels, int bits) {
  NEPHRO_CHECK(bits == 16 || bits == 32, "label TIFF bits must be 16 or 32, got ", bits);
  NEPHRO_CHECK(!labels.empty() && labels.channels() == 1, "write_label_tiff: '", path,
               "' needs a single-channel label image");
  cv::Mat l32;
  labels.convertTo(l32, CV_32S);
  double lo = 0, hi = 0;
  cv::minMaxLoc(l32, &lo, &hi);
  NEPHRO_CHECK(lo >= 0, "write_label_tiff: negative labels in '", path, "'");
  if (bits == 16) {
    NEPHRO_CHECK(hi <= 65535, "write_label_tiff: label ", hi, " does not fit 16 bits ('", path,
                 "'); use 32 bits");
    cv::Mat l16;
    l32.convertTo(l16, CV_16U);
    write_tiff(path, {l16});
    return;
  }
  // 32-bit unsigned: write the int32 bits and mark them unsigned (labels are >= 0).
  write_atomically(path, [&](const std::string& tmp) {
    TIFFSetErrorHandler(nullptr);
    TIFFSetWarningHandler(nullptr);
    TIFF* tif = TIFFOpen(tmp.c_str(), "w");
    NEPHRO_CHECK(tif != nullptr, "cannot create TIFF '", path, "'");
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(l32.cols));
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(l32.rows));
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, static_cast<uint16_t>(32));
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, static_cast<uint16_t>(1));
    TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, SAMPLEFORMAT_UINT);
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
    TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
    TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, TIFFDefaultStripSize(tif, 0));
    bool ok = true;
    for (int y = 0; y < l32.rows && ok; ++y)
      ok = TIFFWriteScanline(tif, l32.ptr<uint8_t>(y), static_cast<uint32_t>(y), 0) >= 0;
    TIFFClose(tif);
    NEPHRO_CHECK(ok, "cannot write TIFF '", path, "'");
  });
}

cv::Mat read_label_image(const std::string& path, int page) {
  cv::Mat raw = read_image_raw(path, page);
  NEPHRO_CHECK(raw.channels() == 1, "label image '", path, "' has ", raw.channels(),
               " channels (needs 1)");
  cv::Mat out;
  raw.convertTo(out, CV_32S);  // 32-bit unsigned TIFF arrives as CV_32S already
  return out;
}

}  // namespace nephroseg::io
