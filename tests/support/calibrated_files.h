// Test support: calibrated micrograph files written byte by byte from the published
// layouts (independent of nephroseg's readers): DigitalMicrograph DM3/DM4 tag trees
// and uncompressed baseline TIFF with resolution tags.
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace nephroseg::test {

// A DM tag-tree writer: big-endian tag headers, little-endian data.
struct DmWriter {
  bool dm4 = true;
  std::string out;

  void be(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
  }
  void count(uint64_t v) { be(v, dm4 ? 8 : 4); }
  void le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
  }
  void label(const std::string& l) {
    be(l.size(), 2);
    out += l;
    if (dm4) be(0, 8);  // tag byte length: the reader does not need it
  }
  void group(const std::string& l, uint64_t ntags) {
    out += static_cast<char>(20);
    label(l);
    out += '\0';
    out += '\0';
    count(ntags);
  }
  void data_header(const std::string& l, const std::vector<uint64_t>& info) {
    out += static_cast<char>(21);
    label(l);
    out += "%%%%";
    count(info.size());
    for (uint64_t v : info) count(v);
  }
  void u32(const std::string& l, uint32_t v) {
    data_header(l, {5});
    le(v, 4);
  }
  void f32(const std::string& l, float v) {
    data_header(l, {6});
    uint32_t w;
    std::memcpy(&w, &v, 4);
    le(w, 4);
  }
  void text(const std::string& l, const std::u16string& s) {
    data_header(l, {20, 4, s.size()});
    for (char16_t c : s) le(c, 2);
  }
  /// The file header (version, length placeholder, little-endian flag) and the root group.
  void begin(uint64_t root_tags) {
    be(dm4 ? 4 : 3, 4);
    be(0, dm4 ? 8 : 4);
    be(1, 4);  // little-endian data
    out += '\1';
    out += '\0';
    count(root_tags);
  }
};

/// A DM file holding one uint16 image (CV_16UC1) calibrated in `unit` per pixel. A
/// non-zero declared_width/height replaces the Dimensions written (a lying header).
inline std::string dm_image_uint16(const cv::Mat& image, double scale, const std::u16string& unit, bool dm4 = true,
                                   uint32_t declared_width = 0, uint32_t declared_height = 0) {
  CV_Assert(image.type() == CV_16UC1);
  DmWriter w;
  w.dm4 = dm4;
  w.begin(1);
  w.group("ImageList", 1);
  w.group("", 1);
  w.group("ImageData", 4);
  w.group("Calibrations", 1);
  w.group("Dimension", 2);
  for (int k = 0; k < 2; ++k) {
    w.group("", 3);
    w.f32("Origin", 0);
    w.f32("Scale", static_cast<float>(scale));
    w.text("Units", unit);
  }
  w.data_header("Data", {20, 4, static_cast<uint64_t>(image.total())});
  for (int y = 0; y < image.rows; ++y)
    for (int x = 0; x < image.cols; ++x) w.le(image.at<uint16_t>(y, x), 2);
  w.u32("DataType", 10);  // uint16
  w.group("Dimensions", 2);
  w.u32("", declared_width ? declared_width : static_cast<uint32_t>(image.cols));
  w.u32("", declared_height ? declared_height : static_cast<uint32_t>(image.rows));
  w.out += std::string(8, '\0');
  return w.out;
}

/// An uncompressed little-endian TIFF of an 8-bit grey image (one strip) with
/// XResolution = YResolution = pixels_per_unit (the rational round(1000 x ppu) / 1000)
/// and ResolutionUnit `unit` (2 = inch, 3 = centimetre).
inline std::string tiff_grey8(const cv::Mat& image, double pixels_per_unit, int unit) {
  CV_Assert(image.type() == CV_8UC1);
  std::string out;
  auto le = [&out](uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
  };
  const uint32_t n_tags = 12, ifd = 8;
  const uint32_t xres_at = ifd + 2 + 12 * n_tags + 4, yres_at = xres_at + 8, data_at = yres_at + 8;
  out += "II";
  le(42, 2);
  le(ifd, 4);
  le(n_tags, 2);
  auto tag = [&](uint16_t id, uint16_t type, uint32_t value) {
    le(id, 2);
    le(type, 2);
    le(1, 4);  // count
    le(value, 4);
  };
  tag(256, 4, static_cast<uint32_t>(image.cols));   // ImageWidth
  tag(257, 4, static_cast<uint32_t>(image.rows));   // ImageLength
  tag(258, 3, 8);                                   // BitsPerSample
  tag(259, 3, 1);                                   // Compression: none
  tag(262, 3, 1);                                   // Photometric: min-is-black
  tag(273, 4, data_at);                             // StripOffsets
  tag(277, 3, 1);                                   // SamplesPerPixel
  tag(278, 4, static_cast<uint32_t>(image.rows));   // RowsPerStrip
  tag(279, 4, static_cast<uint32_t>(image.total()));  // StripByteCounts
  tag(282, 5, xres_at);                             // XResolution (rational)
  tag(283, 5, yres_at);                             // YResolution
  tag(296, 3, static_cast<uint32_t>(unit));         // ResolutionUnit
  le(0, 4);                                         // no next IFD
  const uint32_t num = static_cast<uint32_t>(pixels_per_unit * 1000.0 + 0.5);
  for (int k = 0; k < 2; ++k) {
    le(num, 4);
    le(1000, 4);
  }
  for (int y = 0; y < image.rows; ++y) out.append(reinterpret_cast<const char*>(image.ptr(y)), image.cols);
  return out;
}

}  // namespace nephroseg::test
