// nephroseg/io/image.h: reading microscopy images (PNG, JPEG, TIFF, DigitalMicrograph
// DM3/DM4) into 8-bit RGB.
//
// Colour convention of the whole library: every 3-channel cv::Mat is **RGB** order
// (not OpenCV's BGR). Readers convert on the way in, writers on the way out.
//
// Reading is two steps:
//   1. read_image_raw(): the stored samples, native depth (8U, 16U, 32F), channels in
//      file order (RGB / RGBA for colour files, N channels for multi-channel TIFF).
//      DM files (io/dm.h): uint8 and uint16 keep their depth; int8, int16, int32,
//      uint32, float32 and float64 become CV_32F (so the float rule below applies);
//      RGB(A) becomes CV_8UC4 RGBA.
//   2. to_rgb8(): channel selection and intensity window -> CV_8UC3 RGB.
//
// The rule for 16-bit and multi-channel (immunofluorescence) images:
//   * channels: ImageReadOptions::channels lists the source channel shown as R, G and B
//     (-1 = black). Empty list = default: 1 channel -> grey (R=G=B=c0); 2 channels ->
//     R=c0, G=c1, B=black; 3 or more -> R=c0, G=c1, B=c2 (a 4th alpha channel and any
//     further channels are dropped).
//   * window (per selected channel): WindowMode::kAuto maps 8-bit data unchanged
//     (0..255) and 16-bit / float data through the [p0.5, p99.5] percentile window
//     (values below -> 0, above -> 255, linear between). kPercentile uses
//     percentile_low/high for any depth; kMinMax uses window_min/max (raw units);
//     kFullRange maps 0..max-of-type (0..65535 for 16-bit; 0..1 for float).
//   * multi-page TIFF: `page` picks one page; pages_as_channels = true stacks every
//     single-channel page as a channel (the OME-TIFF layout of multi-channel IF).
//
// Which decoder: by the file's first bytes (PNG signature, JPEG SOI, TIFF II/MM, DM
// version 3/4), not by its extension; BMP, PNM and WebP go to OpenCV's readers, and any
// other content (DICOM, JPEG 2000, EXR, ...) is refused with an error naming the formats.
//
// Limits (hostile or broken files): before anything is decoded, the dimensions are
// read from the header (PNG IHDR, JPEG SOF, TIFF tags, DM Dimensions) and held to
// kMaxImageSide pixels per side and kMaxImagePixels pixels in all; the message names
// the file and the limit. A PNG whose chunks run past the end of the file or lack
// IEND, and a JPEG without its end-of-image marker (truncated files) are refused
// before decoding too. PNG is decoded through libpng with our own error handler (the
// pixels OpenCV's reader gives, RGB order); libtiff's handlers are silenced; libpng's
// and libtiff's messages become one nephroseg::Error line naming the file. (A JPEG
// that is complete but damaged inside still goes to OpenCV, whose libjpeg may warn.) An empty (0-byte) file is
// refused as such.
#pragma once

#include <opencv2/core/mat.hpp>

#include <string>
#include <vector>

namespace nephroseg::io {

/// Largest width or height the readers accept (2^17 = 131072 pixels).
constexpr long long kMaxImageSide = 1LL << 17;
/// Largest number of pixels (width x height) the readers accept (2^30, OpenCV's own
/// default; a 32768 x 32768 micrograph).
constexpr long long kMaxImagePixels = 1LL << 30;

/// The TIFF data rule both TIFF readers (this one and slide's) apply before allocating
/// what a directory declares. `decoded` bytes can come from `stored` bytes (each strip
/// or tile clipped to the file) when uncompressed data is all there (stored >= decoded),
/// or when compressed data expands at most kMaxTiffExpansion times (above deflate's
/// 1032:1, LZW's and PackBits' worst cases). Compressed data decoding to at most
/// kAlwaysDecodableTiffBytes always passes (fax-coded pages compress further).
constexpr unsigned long long kMaxTiffExpansion = 4096;
constexpr unsigned long long kAlwaysDecodableTiffBytes = 64ULL << 20;
constexpr bool tiff_data_is_backed(unsigned long long decoded, unsigned long long stored, bool compressed) {
  return compressed ? decoded <= kAlwaysDecodableTiffBytes || decoded / kMaxTiffExpansion <= stored
                    : stored >= decoded;
}

enum class WindowMode { kAuto, kPercentile, kMinMax, kFullRange };

struct ImageReadOptions {
  int page = 0;                    ///< TIFF page (0-based); other formats have one page
  bool pages_as_channels = false;  ///< stack single-channel TIFF pages as channels
  std::vector<int> channels;       ///< source channel for R, G, B (-1 = black); empty = default
  WindowMode window = WindowMode::kAuto;
  double percentile_low = 0.5;     ///< kAuto (16-bit/float) and kPercentile
  double percentile_high = 99.5;
  double window_min = 0.0;         ///< kMinMax, in raw units
  double window_max = 0.0;
};

/// True for the extensions the readers accept (.png .jpg .jpeg .tif .tiff .dm3 .dm4,
/// any case).
bool is_image_file(const std::string& path);
/// Image files of a folder (not recursive), sorted by name. Throws if the folder is
/// missing.
std::vector<std::string> list_image_files(const std::string& dir);
/// A file name without folder and extension ("a/b/x.ome.tif" -> "x.ome").
std::string file_stem(const std::string& path);

/// The format by the file's first bytes: "png", "jpeg", "tiff", "dm3", "dm4", "empty"
/// (0 bytes) or "other". Throws if the file cannot be opened.
std::string image_format(const std::string& path);
/// Number of pages (TIFF directories); 1 for PNG/JPEG. Throws on unreadable files.
int count_pages(const std::string& path);
/// The stored samples of one page: depth CV_8U, CV_16U or CV_32F, channels in file
/// order (RGB/RGBA for colour). 1-bit TIFF becomes 0/255; palette TIFF becomes RGB.
/// DM3/DM4: the data image (see the rule above). Throws nephroseg::Error naming the
/// file for missing, empty, truncated or oversized files (the limits above).
cv::Mat read_image_raw(const std::string& path, int page = 0);
/// read_image_raw() honouring options.page / options.pages_as_channels.
cv::Mat read_image_raw(const std::string& path, const ImageReadOptions& options);
/// Channel selection and intensity window (the rule above) -> CV_8UC3 RGB.
cv::Mat to_rgb8(const cv::Mat& raw, const ImageReadOptions& options = {});
/// read_image_raw + to_rgb8. Throws nephroseg::Error naming the file when unreadable.
cv::Mat read_image_rgb(const std::string& path, const ImageReadOptions& options = {});
/// CV_8UC1 grey: the single selected channel, or the luminance of to_rgb8
/// (0.299 R + 0.587 G + 0.114 B).
cv::Mat read_image_grey(const std::string& path, const ImageReadOptions& options = {});

/// Writes an 8-bit grey or RGB image (or 16-bit grey) as PNG, atomically.
void write_png(const std::string& path, const cv::Mat& image);
/// PNG bytes of an 8-bit grey/RGB/RGBA image (RGB order in, as everywhere).
std::string encode_png(const cv::Mat& image);
/// Standard base64 (RFC 4648, with padding).
std::string base64_encode(const std::string& bytes);
/// "data:image/png;base64,..." for embedding in HTML.
std::string png_data_uri(const cv::Mat& image);
/// Text with & < > " ' escaped for HTML (element content and quoted attributes).
std::string html_escape(const std::string& text);

/// Writes pages (each 8U or 16U, 1 or 3 channels, or 32F 1 channel) as one multi-page
/// TIFF (deflate), atomically. 3-channel pages are RGB.
void write_tiff(const std::string& path, const std::vector<cv::Mat>& pages);

}  // namespace nephroseg::io
