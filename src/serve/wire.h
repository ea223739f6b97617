// serve/wire.h (internal): decoding what samapi clients send (base64, PNG / JPEG) and
// encoding masks as samapi's GeoJSON Features. No HTTP and no torch here.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <opencv2/core/mat.hpp>

#include <cstdint>
#include <string>

namespace nephroseg::serve::wire {

/// Standard base64 (RFC 4648; padding optional, whitespace ignored, a leading
/// "data:...;base64," stripped). Throws nephroseg::Error naming `what` on any other
/// character or a truncated quantum.
std::string base64_decode(const std::string& text, const std::string& what);

struct ImageHeader {
  std::string format;  // "png" | "jpeg"
  int64_t width = 0;
  int64_t height = 0;
};
/// Width and height from a PNG's IHDR or a JPEG's SOFn marker, without decoding.
/// Throws nephroseg::Error naming `what` for other formats and truncated headers.
ImageHeader read_image_header(const std::string& bytes, const std::string& what);

/// Decodes PNG / JPEG bytes to CV_8UC3 RGB (grey replicated, alpha dropped, 16-bit
/// windowed as io::to_rgb8 does). Throws nephroseg::Error naming `what`.
cv::Mat decode_rgb(const std::string& bytes, const std::string& what);
/// Decodes to one channel, any depth as stored (for b64mask).
cv::Mat decode_grey(const std::string& bytes, const std::string& what);

/// GeoJSON geometry of a binary mask (CV_8U, non-zero = inside): pixel-edge rings,
/// holes kept, closed rings; Polygon for one part, MultiPolygon for several, and
/// samapi's empty Polygon for an empty mask.
nlohmann::json mask_geometry(const cv::Mat& mask);
/// The same geometry appended to `out` as JSON text (integer vertices), without
/// building a JSON tree: what the server sends.
void append_geometry(const cv::Mat& mask, std::string* out);

/// 128-bit hex digest of an image's size, type and pixels (the embedding-cache key).
std::string pixel_digest(const cv::Mat& image);

}  // namespace nephroseg::serve::wire
