// Hostile and broken image files: one nephroseg::Error naming the file, nothing from
// libpng / libjpeg / libtiff / OpenCV on stderr, and dimensions held to the limits
// before anything is decoded.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <tuple>
#include <functional>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "nephroseg/core/error.h"
#include "nephroseg/io/image.h"
#include "support/golden.h"

using namespace nephroseg;

namespace {

std::string put(const std::string& dir, const std::string& name, const std::string& bytes) {
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string encode(const std::string& ext, const cv::Mat& m) {
  std::vector<uchar> buf;
  EXPECT_TRUE(cv::imencode(ext, m, buf));
  return std::string(buf.begin(), buf.end());
}

cv::Mat noise(int w, int h) {
  cv::Mat m(h, w, CV_8UC3);
  cv::randu(m, 0, 255);
  return m;
}

// The error of read_image_raw(path), and whatever was printed to stderr meanwhile.
struct Outcome {
  std::string error, stderr_text;
};
Outcome read_outcome(const std::string& path) {
  Outcome o;
  testing::internal::CaptureStderr();
  try {
    io::read_image_raw(path);
  } catch (const Error& e) {
    o.error = e.what();
  } catch (const std::exception& e) {
    o.error = std::string("not a nephroseg::Error: ") + e.what();
  }
  o.stderr_text = testing::internal::GetCapturedStderr();
  return o;
}

void expect_clean_error(const Outcome& o, const std::string& file, const std::string& words) {
  EXPECT_NE(o.error.find(file), std::string::npos) << o.error;
  EXPECT_NE(o.error.find(words), std::string::npos) << o.error;
  EXPECT_EQ(o.error.find('\n'), std::string::npos) << o.error;
  EXPECT_TRUE(o.stderr_text.empty()) << "printed: " << o.stderr_text;
}

// A little-endian TIFF of one grey 8-bit strip holding a single byte, declaring
// width x height pixels of `spp` samples, with TIFF compression code `compression`.
std::string tiny_tiff(uint32_t width, uint32_t height, uint16_t compression, uint16_t spp) {
  std::string tif("II*\0\x08\0\0\0", 8);
  auto le16 = [&](uint16_t v) { tif += static_cast<char>(v & 0xFF), tif += static_cast<char>(v >> 8); };
  auto le32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) tif += static_cast<char>((v >> (8 * i)) & 0xFF);
  };
  const std::vector<std::pair<uint16_t, uint32_t>> longs = {{256, width}, {257, height}, {273, 0},
                                                            {278, height}, {279, 1}};
  const std::vector<std::pair<uint16_t, uint16_t>> shorts = {
      {258, 8}, {259, compression}, {262, static_cast<uint16_t>(spp == 3 ? 2 : 1)}, {277, spp}};
  std::vector<std::tuple<uint16_t, uint16_t, uint32_t>> entries;
  for (auto [tag, v] : longs) entries.emplace_back(tag, 4, v);
  for (auto [tag, v] : shorts) entries.emplace_back(tag, 3, v);
  std::sort(entries.begin(), entries.end());
  const uint32_t strip = 8 + 2 + 12 * static_cast<uint32_t>(entries.size()) + 4;
  le16(static_cast<uint16_t>(entries.size()));
  for (auto [tag, type, v] : entries) {
    le16(tag);
    le16(type);
    le32(1);
    le32(tag == 273 ? strip : v);
  }
  le32(0);
  tif += '\0';
  return tif;
}

std::string base64_decode(const std::string& text) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : text) {
    const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char* at = std::strchr(table, ch);
    if (ch == '=' || at == nullptr) break;
    acc = (acc << 6) | static_cast<uint32_t>(at - table);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

void be32_at(std::string& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = static_cast<char>((v >> (24 - 8 * i)) & 0xFF);
}

}  // namespace

TEST(ImageLimits, EmptyAndTruncatedFiles) {
  const std::string dir = test::temp_dir("limits_trunc");
  expect_clean_error(read_outcome(put(dir, "zero.png", "")), "zero.png", "empty (0 bytes)");
  const std::string png = encode(".png", noise(64, 48));
  expect_clean_error(read_outcome(put(dir, "half.png", png.substr(0, png.size() / 2))), "half.png", "truncated");
  expect_clean_error(read_outcome(put(dir, "head.png", png.substr(0, 20))), "head.png", "truncated");
  std::string bad_crc = png;
  bad_crc[png.size() / 2] = static_cast<char>(bad_crc[png.size() / 2] ^ 0x55);
  expect_clean_error(read_outcome(put(dir, "crc.png", bad_crc)), "crc.png", "CRC");
  const std::string jpg = encode(".jpg", noise(64, 48));
  expect_clean_error(read_outcome(put(dir, "half.jpg", jpg.substr(0, jpg.size() / 2))), "half.jpg", "truncated");
  expect_clean_error(read_outcome(put(dir, "head.jpg", jpg.substr(0, 10))), "head.jpg", "truncated");
  const std::string tif = encode(".tiff", noise(64, 48));
  const Outcome t = read_outcome(put(dir, "half.tif", tif.substr(0, tif.size() / 2)));
  EXPECT_NE(t.error.find("half.tif"), std::string::npos) << t.error;
  EXPECT_TRUE(t.stderr_text.empty()) << "printed: " << t.stderr_text;
  const Outcome t8 = read_outcome(put(dir, "head.tif", tif.substr(0, 8)));
  EXPECT_NE(t8.error.find("head.tif"), std::string::npos) << t8.error;
  EXPECT_TRUE(t8.stderr_text.empty()) << "printed: " << t8.stderr_text;
  // The intact files still read.
  EXPECT_EQ(io::read_image_raw(put(dir, "ok.png", png)).size(), cv::Size(64, 48));
  EXPECT_EQ(io::read_image_raw(put(dir, "ok.jpg", jpg)).size(), cv::Size(64, 48));
}

TEST(ImageLimits, ContentDecidesNotTheExtension) {
  const std::string dir = test::temp_dir("limits_ext");
  const cv::Mat m = noise(9, 7);
  // A PNG named .jpg and a PNG named .tif read as PNG (exactly).
  const cv::Mat a = io::read_image_raw(put(dir, "png.jpg", encode(".png", m)));
  const cv::Mat b = io::read_image_raw(put(dir, "png.tif", encode(".png", m)));
  EXPECT_EQ(cv::norm(a, b, cv::NORM_INF), 0.0);
  EXPECT_EQ(io::image_format(dir + "/png.tif"), "png");
  // Text named .png: one clean error.
  expect_clean_error(read_outcome(put(dir, "text.png", "this is not an image at all\n")), "text.png",
                     "cannot read image");
}

TEST(ImageLimits, HugeDeclaredDimensionsAreRefusedFromTheHeader) {
  const std::string dir = test::temp_dir("limits_huge");
  // PNG: IHDR patched to 2^20 x 2^20 (the CRC no longer matches: the size is checked first).
  std::string png = encode(".png", noise(8, 8));
  be32_at(png, 16, 1u << 20);
  be32_at(png, 20, 1u << 20);
  expect_clean_error(read_outcome(put(dir, "huge.png", png)), "huge.png", "limit of 131072");
  // PNG: 40000 x 40000 is within the side limit but over 2^30 pixels.
  be32_at(png, 16, 40000);
  be32_at(png, 20, 40000);
  expect_clean_error(read_outcome(put(dir, "many.png", png)), "many.png", "1073741824 pixels");
  // JPEG: SOF patched to 65535 x 65535.
  std::string jpg = encode(".jpg", noise(8, 8));
  size_t sof = std::string::npos;
  for (size_t i = 2; i + 1 < jpg.size(); ++i)
    if (uint8_t(jpg[i]) == 0xFF && uint8_t(jpg[i + 1]) == 0xC0) {
      sof = i;
      break;
    }
  ASSERT_NE(sof, std::string::npos);
  for (size_t k = 5; k < 9; ++k) jpg[sof + k] = static_cast<char>(0xFF);
  expect_clean_error(read_outcome(put(dir, "huge.jpg", jpg)), "huge.jpg", "limit");
  // TIFF: a hand-made header declaring 200000 x 200000 pixels over a 1-byte strip.
  expect_clean_error(read_outcome(put(dir, "huge.tif", tiny_tiff(200000, 200000, 1, 1))), "huge.tif",
                     "limit");
}

// Within the dimension limits, but the file cannot hold what it declares: refused
// before the pixels are allocated (a 137-byte file once made the reader ask for 3.4 GB).
TEST(ImageLimits, TiffDeclaringMorePixelsThanItHoldsIsRefusedBeforeAllocating) {
  const std::string dir = test::temp_dir("limits_tiff_data");
  // 30000 x 30000 x 3 samples (2.7 GB), uncompressed, one byte of strip data.
  expect_clean_error(read_outcome(put(dir, "short.tif", tiny_tiff(30000, 30000, 1, 3))), "short.tif",
                     "holds 1 bytes of uncompressed image data");
  // The same with LZW: no codec expands one byte to 2.7 GB.
  expect_clean_error(read_outcome(put(dir, "lzw.tif", tiny_tiff(30000, 30000, 5, 3))), "lzw.tif",
                     "holds 1 bytes of compressed image data");
  // The fuzzer's input (fuzz_image, 2026-12-03): 137 bytes that made the reader ask
  // for 3.4 GB.
  const std::string fuzz = base64_decode(
      "SUkqAAgAAAAJAAABAwABAAAASUkqAAEBAwABAAAAAVBMVEUBAwABAAAAAQAAABEBBAABAAAAegAAABUBAwABAAAACQAAAwEAABYB"
      "AAAAAgAAABcBBAABAAAABAAAABYBAwABAAAAAgAAABcBBAr///////////////9JREFU/////////wBAgP8=");
  const Outcome f = read_outcome(put(dir, "fuzz.tif", fuzz));
  EXPECT_NE(f.error.find("fuzz.tif"), std::string::npos) << f.error;
  EXPECT_EQ(f.error.find("not a nephroseg::Error"), std::string::npos) << f.error;
  EXPECT_TRUE(f.stderr_text.empty()) << "printed: " << f.stderr_text;
  // A real, well-compressed image still reads: 4096 x 4096 of zeros with LZW.
  const cv::Mat zeros = cv::Mat::zeros(4096, 4096, CV_8UC1);
  std::vector<uchar> buf;
  ASSERT_TRUE(cv::imencode(".tiff", zeros, buf, {cv::IMWRITE_TIFF_COMPRESSION, 5}));
  const cv::Mat back = io::read_image_raw(put(dir, "zeros.tif", std::string(buf.begin(), buf.end())));
  EXPECT_EQ(back.size(), cv::Size(4096, 4096));
  EXPECT_EQ(cv::countNonZero(back), 0);
}

// Content none of our checked readers knows goes nowhere: the fuzzer's DICOM-looking
// file ("DICM" at offset 128) made OpenCV's GDCM reader abort the process.
TEST(ImageLimits, UncheckedFormatsAreRefusedNotHandedToOpenCv) {
  const std::string dir = test::temp_dir("limits_formats");
  const std::string dicm = base64_decode(
      "SUkqPz8/Pz8/Pz8/Pz8/Pz8/Pz8/Pz8/Pz8/Pz8/Pz8/Pz8/Pz8/Pz8/Pz8/Pz8/Pz8/Pz8/Pz8/Pz8/Pz8/Pz8/Pz8/Pz8/Pz8/"
      "Pz8/Pz8/Pz8/Pz8/Pz8/Pz8/Pz8/Pz8/Pz8/AAgAAAAJAAABAwABAAAAAgAAAAEBAwABAABESUNNAgABAwAB0gAAAAgAAAADAQMA"
      "AQAAAAEAAAAGAQMAAQAAAAEAAAARAQQAAQAAAHoAAAAVAQPfAQAAAAEAABYBAwABAAAAIQIAAAAXAQQAAQAAAAQAAAAAAAAAAECA"
      "/w==");
  ASSERT_EQ(dicm.size(), 226u);
  expect_clean_error(read_outcome(put(dir, "dicm.tif", dicm)), "dicm.tif", "nephroseg reads PNG, JPEG");
  std::string jp2("\0\0\0\x0cjP  \r\n\x87\n", 12);
  jp2 += std::string(64, '\0');
  expect_clean_error(read_outcome(put(dir, "a.jp2", jp2)), "a.jp2", "nephroseg reads PNG, JPEG");
  // BMP still reads, exactly; a BMP header declaring 200000 x 200000 is refused.
  const cv::Mat m = noise(13, 7);
  const std::string bmp = encode(".bmp", m);
  cv::Mat rgb;
  cv::cvtColor(m, rgb, cv::COLOR_BGR2RGB);
  EXPECT_EQ(cv::norm(io::read_image_raw(put(dir, "ok.bmp", bmp)), rgb, cv::NORM_INF), 0.0);
  std::string huge = bmp;
  for (size_t at : {18u, 22u})
    for (int k = 0; k < 4; ++k) huge[at + k] = static_cast<char>((200000u >> (8 * k)) & 0xFF);
  expect_clean_error(read_outcome(put(dir, "huge.bmp", huge)), "huge.bmp", "limit of 131072");
}

namespace {
uint32_t crc32_bitwise(const std::string& s) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char ch : s) {
    c ^= ch;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
  }
  return ~c;
}
}  // namespace

TEST(ImageLimits, PngDecodesAsOpenCvDoes) {
  const std::string dir = test::temp_dir("limits_png_same");
  cv::Mat grey8(13, 17, CV_8U), grey16(13, 17, CV_16U), rgb8 = noise(17, 13), rgba8(13, 17, CV_8UC4), rgb16(13, 17, CV_16UC3);
  cv::randu(grey8, 0, 255);
  cv::randu(grey16, 0, 65535);
  cv::randu(rgba8, 0, 255);
  cv::randu(rgb16, 0, 65535);
  cv::Mat bilevel = grey8 > 128;
  int k = 0;
  for (const cv::Mat& m : {grey8, grey16, rgb8, rgba8, rgb16}) {
    const std::string path = dir + "/m" + std::to_string(k++) + ".png";
    ASSERT_TRUE(cv::imwrite(path, m));
    cv::Mat expected = cv::imread(path, cv::IMREAD_UNCHANGED);
    if (expected.channels() == 3) cv::cvtColor(expected, expected, cv::COLOR_BGR2RGB);
    if (expected.channels() == 4) cv::cvtColor(expected, expected, cv::COLOR_BGRA2RGBA);
    const cv::Mat got = io::read_image_raw(path);
    ASSERT_EQ(got.type(), expected.type()) << path;
    EXPECT_EQ(cv::norm(got, expected, cv::NORM_INF), 0.0) << path;
  }
  const std::string bl = dir + "/bilevel.png";
  ASSERT_TRUE(cv::imwrite(bl, bilevel, {cv::IMWRITE_PNG_BILEVEL, 1}));
  const cv::Mat got = io::read_image_raw(bl);
  ASSERT_EQ(got.type(), CV_8UC1);
  EXPECT_EQ(cv::norm(got, cv::imread(bl, cv::IMREAD_UNCHANGED), cv::NORM_INF), 0.0);
}

TEST(ImageLimits, CorruptPngDataWithValidCrcGivesOurErrorOnly) {
  const std::string dir = test::temp_dir("limits_png_zlib");
  std::string png = encode(".png", noise(32, 32));
  const size_t idat = png.find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  const uint32_t len = (uint32_t(uint8_t(png[idat - 4])) << 24) | (uint32_t(uint8_t(png[idat - 3])) << 16) |
                       (uint32_t(uint8_t(png[idat - 2])) << 8) | uint32_t(uint8_t(png[idat - 1]));
  for (size_t i = idat + 4 + 2; i < idat + 4 + len; i += 5) png[i] = static_cast<char>(png[i] ^ 0xA5);
  be32_at(png, idat + 4 + len, crc32_bitwise(png.substr(idat, 4 + len)));
  const Outcome o = read_outcome(put(dir, "zlib.png", png));
  expect_clean_error(o, "zlib.png", "cannot read PNG");
}
