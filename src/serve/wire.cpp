#include "serve/wire.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <charconv>
#include <cstdio>
#include <functional>
#include <string_view>
#include <vector>

#include "nephroseg/core/error.h"
#include "nephroseg/io/geojson.h"
#include "nephroseg/io/image.h"

namespace nephroseg::serve::wire {
namespace {

int base64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;  // '-' and '_': the URL-safe alphabet
  if (c == '/' || c == '_') return 63;
  return -1;
}

uint32_t big_endian32(const std::string& b, size_t at) {
  return (uint32_t(uint8_t(b[at])) << 24) | (uint32_t(uint8_t(b[at + 1])) << 16) |
         (uint32_t(uint8_t(b[at + 2])) << 8) | uint32_t(uint8_t(b[at + 3]));
}
uint32_t big_endian16(const std::string& b, size_t at) {
  return (uint32_t(uint8_t(b[at])) << 8) | uint32_t(uint8_t(b[at + 1]));
}

cv::Mat decode_raw(const std::string& bytes, const std::string& what) {
  read_image_header(bytes, what);
  std::vector<uint8_t> buffer(bytes.begin(), bytes.end());
  cv::Mat raw;
  try {
    raw = cv::imdecode(buffer, cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {
    NEPHRO_FAIL(what, ": the image could not be decoded (", e.what(), ")");
  }
  NEPHRO_CHECK(!raw.empty(), what, ": the image could not be decoded (corrupt PNG/JPEG data)");
  return raw;
}

}  // namespace

std::string base64_decode(const std::string& text, const std::string& what) {
  std::string_view in(text);
  if (in.substr(0, 5) == "data:") {
    const size_t comma = in.find(',');
    NEPHRO_CHECK(comma != std::string_view::npos, what, ": a data URI without a comma");
    in.remove_prefix(comma + 1);
  }
  std::string out;
  out.reserve(in.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0, count = 0, padding = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const unsigned char c = in[i];
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    const int v = base64_value(c);
    NEPHRO_CHECK(v >= 0 && padding == 0, what, ": not base64 (character ", i, " is '",
                 std::isprint(c) ? std::string(1, char(c)) : "\\x" + std::to_string(int(c)), "')");
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    ++count;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(char((acc >> bits) & 0xFF));
    }
  }
  NEPHRO_CHECK(count % 4 != 1, what, ": not base64 (truncated: ", count, " symbols)");
  NEPHRO_CHECK(padding <= 2, what, ": not base64 (", padding, " padding characters)");
  NEPHRO_CHECK(!out.empty(), what, ": empty");
  return out;
}

ImageHeader read_image_header(const std::string& b, const std::string& what) {
  static const char kPng[8] = {'\x89', 'P', 'N', 'G', '\r', '\n', '\x1a', '\n'};
  ImageHeader h;
  if (b.size() >= 8 && b.compare(0, 8, std::string(kPng, 8)) == 0) {
    // Signature, then the IHDR chunk: length(4) "IHDR" width(4) height(4) ...
    NEPHRO_CHECK(b.size() >= 24 && b.compare(12, 4, "IHDR") == 0, what,
                 ": a truncated PNG (no IHDR chunk)");
    h.format = "png";
    h.width = big_endian32(b, 16);
    h.height = big_endian32(b, 20);
  } else if (b.size() >= 3 && uint8_t(b[0]) == 0xFF && uint8_t(b[1]) == 0xD8) {
    h.format = "jpeg";
    size_t at = 2;
    for (;;) {
      // Markers may be preceded by fill bytes 0xFF.
      while (at < b.size() && uint8_t(b[at]) == 0xFF && at + 1 < b.size() && uint8_t(b[at + 1]) == 0xFF) ++at;
      NEPHRO_CHECK(at + 4 <= b.size() && uint8_t(b[at]) == 0xFF, what,
                   ": a truncated or corrupt JPEG (no frame header)");
      const uint8_t marker = uint8_t(b[at + 1]);
      if (marker == 0xD9 || marker == 0xDA) NEPHRO_FAIL(what, ": a JPEG without a frame header (SOFn)");
      if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // no length
        at += 2;
        continue;
      }
      const uint32_t length = big_endian16(b, at + 2);
      NEPHRO_CHECK(length >= 2, what, ": a corrupt JPEG (segment length ", length, ")");
      const bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
      if (sof) {
        NEPHRO_CHECK(at + 9 <= b.size(), what, ": a truncated JPEG frame header");
        h.height = big_endian16(b, at + 5);
        h.width = big_endian16(b, at + 7);
        break;
      }
      at += 2 + length;
    }
  } else {
    NEPHRO_FAIL(what, ": not a PNG or JPEG image (this server reads those two formats)");
  }
  NEPHRO_CHECK(h.width > 0 && h.height > 0, what, ": the ", h.format, " header gives an empty image (",
               h.width, " x ", h.height, ")");
  return h;
}

cv::Mat decode_rgb(const std::string& bytes, const std::string& what) {
  cv::Mat raw = decode_raw(bytes, what);
  if (raw.channels() == 3) cv::cvtColor(raw, raw, cv::COLOR_BGR2RGB);
  if (raw.channels() == 4) cv::cvtColor(raw, raw, cv::COLOR_BGRA2RGBA);
  cv::Mat rgb = io::to_rgb8(raw);
  if (!rgb.isContinuous()) rgb = rgb.clone();
  return rgb;
}

cv::Mat decode_grey(const std::string& bytes, const std::string& what) {
  cv::Mat raw = decode_raw(bytes, what);
  if (raw.channels() == 1) return raw;
  cv::Mat grey;
  cv::cvtColor(raw, grey, raw.channels() == 4 ? cv::COLOR_BGRA2GRAY : cv::COLOR_BGR2GRAY);
  return grey;
}

void append_geometry(const cv::Mat& mask, std::string* out) {
  cv::Mat labels;
  cv::compare(mask, 0, labels, cv::CMP_NE);  // 255 inside
  labels.convertTo(labels, CV_32S, 1.0 / 255.0);
  const std::vector<io::PolygonObject> objects = io::trace_objects(labels);
  size_t parts = 0;
  for (const auto& object : objects) parts += object.polygons.size();
  if (parts == 0) {
    *out += R"({"type":"Polygon","coordinates":[]})";
    return;
  }
  // Pixel-edge vertices are whole numbers: written as integers. Rings are closed.
  char number[48];
  const auto vertex = [&](const cv::Point2d& p) {
    char* end = number;
    *end++ = '[';
    end = std::to_chars(end, number + sizeof number, static_cast<long long>(p.x)).ptr;
    *end++ = ',';
    end = std::to_chars(end, number + sizeof number, static_cast<long long>(p.y)).ptr;
    *end++ = ']';
    out->append(number, static_cast<size_t>(end - number));
  };
  *out += parts == 1 ? R"({"type":"Polygon","coordinates":)" : R"({"type":"MultiPolygon","coordinates":[)";
  bool first_polygon = true;
  for (const auto& object : objects)
    for (const auto& polygon : object.polygons) {
      if (!first_polygon) *out += ',';
      first_polygon = false;
      *out += '[';
      for (size_t r = 0; r < polygon.size(); ++r) {
        if (r > 0) *out += ',';
        *out += '[';
        for (const auto& p : polygon[r]) {
          vertex(p);
          *out += ',';
        }
        if (!polygon[r].empty()) vertex(polygon[r].front());
        *out += ']';
      }
      *out += ']';
    }
  *out += parts == 1 ? "}" : "]}";
}

nlohmann::json mask_geometry(const cv::Mat& mask) {
  std::string text;
  append_geometry(mask, &text);
  return nlohmann::json::parse(text);
}

std::string pixel_digest(const cv::Mat& image) {
  const cv::Mat m = image.isContinuous() ? image : image.clone();
  const std::string_view bytes(reinterpret_cast<const char*>(m.data), m.total() * m.elemSize());
  uint64_t fnv = 1469598103934665603ull;
  for (const char c : bytes) {
    fnv ^= uint8_t(c);
    fnv *= 1099511628211ull;
  }
  const uint64_t other = std::hash<std::string_view>{}(bytes);
  char text[64];
  std::snprintf(text, sizeof text, "%dx%dx%d-%016llx%016llx", m.cols, m.rows, m.type(),
                static_cast<unsigned long long>(fnv), static_cast<unsigned long long>(other));
  return text;
}

}  // namespace nephroseg::serve::wire
