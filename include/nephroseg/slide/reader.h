// nephroseg/slide/reader.h: whole-slide images read by region, never whole.
//
// One interface over three back ends, chosen by open_slide():
//   * OpenSlide (SVS, NDPI, MRXS, SCN, Philips, Ventana, ... brightfield): 8-bit RGB;
//     OpenSlide's premultiplied ARGB is un-premultiplied and composited on white.
//   * libtiff for (OME-)TIFF pyramids, including multi-channel fluorescence: 8- or
//     16-bit, tiled or stripped, contiguous samples (1..N channels per pixel) or OME
//     channels stored as single-channel pages; pyramid levels as SubIFDs of the first
//     page, or as further pages of decreasing size. OME-XML PhysicalSizeX/Y (+ unit)
//     and channel names are read; otherwise the TIFF resolution tags (cm / inch).
//   * plain PNG / JPEG (and TIFF that is neither tiled nor pyramidal but fits the
//     TIFF path anyway) as one-level slides; PNG/JPEG are decoded once (they are
//     ordinary images, not slides).
// Coordinates: every rectangle is in pixels of the level it names; level 0 is the
// full resolution. Regions may extend past the level; outside pixels read as 0
// (white, 255, for OpenSlide brightfield).
// Thread-safety: read_region() is serialised internally; a reader may be shared.
#pragma once

#include <opencv2/core/mat.hpp>
#include <opencv2/core/types.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace nephroseg::slide {

struct SlideLevel {
  int64_t width = 0;
  int64_t height = 0;
  double downsample = 1.0;  ///< level-0 pixels per pixel of this level (x)
};

struct SlideInfo {
  std::string path;
  std::string backend;             ///< "openslide", "tiff" or "image"
  std::string vendor;              ///< OpenSlide vendor, "ome-tiff", "tiff", "png", ...
  std::vector<SlideLevel> levels;  ///< level 0 first
  double mpp_x = 0.0;              ///< level-0 µm per pixel; 0 = not recorded
  double mpp_y = 0.0;
  double objective_power = 0.0;    ///< 0 = not recorded
  int channels = 3;                ///< samples per pixel of read_region()
  int depth = 8;                   ///< 8 or 16 bits per sample
  std::vector<std::string> channel_names;
  /// True for 8-bit RGB(A) brightfield slides (dark tissue on white); false for
  /// fluorescence (bright signal on black), i.e. 16-bit data or not 3 channels.
  bool brightfield() const { return depth == 8 && channels == 3; }
};

class SlideReader {
 public:
  virtual ~SlideReader() = default;
  const SlideInfo& info() const { return info_; }
  /// Stored samples of `rect` (pixels of `level`): CV_8UC(channels) or CV_16UC(...),
  /// RGB order for colour. Throws for a level out of range or an empty rect.
  virtual cv::Mat read_region(int level, const cv::Rect& rect) = 0;

 protected:
  SlideInfo info_;
};

/// Largest level side open_slide() accepts (whole-slide scans reach ~200,000 px).
constexpr int64_t kMaxSlideSide = int64_t(1) << 20;

/// Opens a slide by its content: OpenSlide for the formats it recognises (except
/// plain generic TIFF, which goes to the libtiff reader so multi-channel and 16-bit
/// data are kept), libtiff for TIFF, OpenCV for PNG/JPEG. Throws nephroseg::Error
/// naming the file when it is missing, unsupported or corrupt, or when a level is
/// larger than kMaxSlideSide.
std::unique_ptr<SlideReader> open_slide(const std::string& path);

/// True for the file extensions open_slide() accepts (for folder listings).
bool is_slide_file(const std::string& path);

/// What `nephroseg info` prints of a slide: one JSON object (no newline) with reader,
/// vendor, levels [{width, height, downsample}], mpp_x / mpp_y (null when not
/// recorded), objective_power (null when not recorded), channels, depth, channel_names.
std::string slide_info_json(const SlideInfo& info);
/// The slide description of `path` when it is a whole slide (an OpenSlide format, or a
/// TIFF with more than one pyramid level); nullopt for plain images and unreadable files.
std::optional<SlideInfo> probe_slide(const std::string& path);

/// Reads the level-0 rectangle `rect_l0` resampled to `out_size` pixels from the best
/// level: the coarsest level whose downsample does not exceed the requested one (so
/// no detail is invented), then cv::INTER_AREA (down) or INTER_LINEAR (up) to
/// out_size; no resampling when the level matches exactly. Native depth kept.
cv::Mat read_resampled(SlideReader& reader, const cv::Rect2d& rect_l0, cv::Size out_size);

}  // namespace nephroseg::slide
