#include "nephroseg/io/image.h"

#include <png.h>
#include <tiffio.h>

#include <csetjmp>
#include <cstdio>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "nephroseg/core/error.h"
#include "nephroseg/core/atomic_file.h"
#include "nephroseg/io/dm.h"

namespace fs = std::filesystem;

namespace nephroseg::io {

namespace {

std::string lower_ext(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

enum class Format { kEmpty, kPng, kJpeg, kTiff, kDm, kOther };

// The decoder is chosen by the first bytes, not by the extension.
Format sniff(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  NEPHRO_CHECK(in.good(), "cannot open image '", path, "'");
  char h[16] = {};
  in.read(h, sizeof h);
  const std::string head(h, static_cast<size_t>(in.gcount()));
  if (head.empty()) return Format::kEmpty;
  if (head.size() >= 8 && head.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0) return Format::kPng;
  if (head.size() >= 3 && head.compare(0, 3, "\xff\xd8\xff") == 0) return Format::kJpeg;
  if (head.size() >= 4 && (head.compare(0, 4, std::string("II*\0", 4)) == 0 || head.compare(0, 4, std::string("MM\0*", 4)) == 0 ||
                           head.compare(0, 4, std::string("II+\0", 4)) == 0 || head.compare(0, 4, std::string("MM\0+", 4)) == 0))
    return Format::kTiff;
  if (looks_like_dm(head)) return Format::kDm;
  return Format::kOther;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  NEPHRO_CHECK(in.good(), "cannot open image '", path, "'");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void check_dimensions(const std::string& path, const char* format, uint64_t width, uint64_t height) {
  NEPHRO_CHECK(width >= 1 && height >= 1, format, " '", path, "' declares a ", width, " x ", height, " image (no pixels)");
  NEPHRO_CHECK(width <= static_cast<uint64_t>(kMaxImageSide) && height <= static_cast<uint64_t>(kMaxImageSide) &&
                   width * height <= static_cast<uint64_t>(kMaxImagePixels),
               format, " '", path, "' declares a ", width, " x ", height, " image, beyond the limit of ", kMaxImageSide,
               " pixels per side and ", kMaxImagePixels, " pixels in all");
}

// BMP: BITMAPINFOHEADER width and height (a negative height is a top-down image)
// against the limits; a header too short to hold them is truncated.
void check_bmp(const std::string& path, const std::string& b) {
  NEPHRO_CHECK(b.size() >= 26, "BMP '", path, "' is truncated (", b.size(), " bytes)");
  auto le32s = [&](size_t at) {
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) v |= uint32_t(uint8_t(b[at + k])) << (8 * k);
    return static_cast<int64_t>(static_cast<int32_t>(v));
  };
  const uint32_t header = static_cast<uint32_t>(le32s(14));
  if (header == 12) return;  // OS/2 core header: 16-bit sides, within the limits
  const int64_t w = le32s(18), h = le32s(22);
  check_dimensions(path, "BMP", static_cast<uint64_t>(std::max<int64_t>(w, 0)),
                   static_cast<uint64_t>(h < 0 ? -h : h));
}

uint32_t be32(const std::string& b, size_t at) {
  return (uint32_t(uint8_t(b[at])) << 24) | (uint32_t(uint8_t(b[at + 1])) << 16) | (uint32_t(uint8_t(b[at + 2])) << 8) |
         uint32_t(uint8_t(b[at + 3]));
}

uint32_t crc32_of(const char* data, size_t n) {
  static const auto table = [] {
    std::vector<uint32_t> t(256);
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ uint8_t(data[i])) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

// PNG: IHDR dimensions against the limits, and every chunk inside the file with a
// correct CRC up to IEND, so that libpng is never handed a truncated or damaged file
// (it would print "libpng error: ..." itself).
void check_png(const std::string& path, const std::string& b) {
  NEPHRO_CHECK(b.size() >= 33 && b.compare(12, 4, "IHDR") == 0 && be32(b, 8) == 13,
               "PNG '", path, "' is truncated or corrupt (no IHDR header)");
  check_dimensions(path, "PNG", be32(b, 16), be32(b, 20));
  size_t pos = 8;
  while (true) {
    NEPHRO_CHECK(pos + 12 <= b.size(), "PNG '", path, "' is truncated (", b.size(), " bytes; ends before its IEND chunk)");
    const uint64_t len = be32(b, pos);
    NEPHRO_CHECK(len <= b.size() - pos - 12, "PNG '", path, "' is truncated (chunk '", b.substr(pos + 4, 4),
                 "' at byte ", pos, " runs past the end of the file)");
    NEPHRO_CHECK(crc32_of(b.data() + pos + 4, len + 4) == be32(b, pos + 8 + len), "PNG '", path,
                 "' is corrupt (CRC error in chunk '", b.substr(pos + 4, 4), "' at byte ", pos, ")");
    if (b.compare(pos + 4, 4, "IEND") == 0) break;
    pos += 12 + len;
  }
}

// PNG decoding through libpng with our own error and warning handlers (OpenCV's PNG
// decoder leaves libpng's default handler, which prints "libpng error: ..."). The
// result matches cv::imread(IMREAD_UNCHANGED) after BGR -> RGB: grey stays 1 channel,
// RGB and palette give 3, any alpha or tRNS gives RGBA, bit depths < 8 expand to 8
// and 16-bit stays 16-bit.
struct PngInput {
  const std::string* bytes;
  size_t pos;
  char message[256];
};

void png_on_error(png_structp png, png_const_charp msg) {
  auto* in = static_cast<PngInput*>(png_get_error_ptr(png));
  std::snprintf(in->message, sizeof in->message, "%s", msg ? msg : "unknown error");
  png_longjmp(png, 1);
}
void png_on_warning(png_structp, png_const_charp) {}

void png_on_read(png_structp png, png_bytep out, png_size_t n) {
  auto* in = static_cast<PngInput*>(png_get_io_ptr(png));
  if (n > in->bytes->size() - in->pos) png_error(png, "read past the end of the file");
  std::memcpy(out, in->bytes->data() + in->pos, n);
  in->pos += n;
}

// Only plain data lives in the frames below setjmp (longjmp skips destructors).
int png_read_header(png_structp png, png_infop info, PngInput* in, png_uint_32* w, png_uint_32* h, int* channels,
                    int* depth16) {
  if (setjmp(png_jmpbuf(png))) return 0;
  png_set_read_fn(png, in, png_on_read);
  png_read_info(png, info);
  int bit_depth = 0, color_type = 0;
  png_get_IHDR(png, info, w, h, &bit_depth, &color_type, nullptr, nullptr, nullptr);
  const bool alpha = (color_type & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS);
  const bool colour = (color_type & PNG_COLOR_MASK_COLOR) || color_type == PNG_COLOR_TYPE_PALETTE;
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  if (alpha && !colour) png_set_gray_to_rgb(png);
  if (bit_depth == 16) png_set_swap(png);  // host order (little-endian)
  if (bit_depth < 8) png_set_packing(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  *channels = alpha ? 4 : colour ? 3 : 1;
  *depth16 = bit_depth == 16 ? 1 : 0;
  return static_cast<int>(png_get_channels(png, info)) == *channels ? 1 : -1;
}

int png_read_pixels(png_structp png, png_infop info, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return 0;
  png_read_image(png, rows);
  png_read_end(png, info);
  return 1;
}

cv::Mat decode_png(const std::string& path, const std::string& bytes) {
  PngInput in{&bytes, 0, {0}};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &in, png_on_error, png_on_warning);
  NEPHRO_CHECK(png != nullptr, "cannot start the PNG decoder for '", path, "'");
  png_infop info = png_create_info_struct(png);
  struct Cleanup {
    png_structp* png;
    png_infop* info;
    ~Cleanup() { png_destroy_read_struct(png, info, nullptr); }
  } cleanup{&png, &info};
  NEPHRO_CHECK(info != nullptr, "cannot start the PNG decoder for '", path, "'");
  png_uint_32 w = 0, h = 0;
  int channels = 0, depth16 = 0;
  const int header = png_read_header(png, info, &in, &w, &h, &channels, &depth16);
  NEPHRO_CHECK(header != 0, "cannot read PNG '", path, "': ", in.message);
  NEPHRO_CHECK(header > 0, "cannot read PNG '", path, "': unsupported channel layout");
  check_dimensions(path, "PNG", w, h);
  cv::Mat out(static_cast<int>(h), static_cast<int>(w), CV_MAKETYPE(depth16 ? CV_16U : CV_8U, channels));
  std::vector<png_bytep> rows(h);
  for (png_uint_32 y = 0; y < h; ++y) rows[y] = out.ptr<png_byte>(static_cast<int>(y));
  NEPHRO_CHECK(png_read_pixels(png, info, rows.data()) != 0, "cannot read PNG '", path, "': ", in.message);
  return out;
}

// JPEG: SOF dimensions against the limits, and the end-of-image marker after the scan
// data (a truncated JPEG otherwise decodes to grey with a libjpeg warning on stderr).
void check_jpeg(const std::string& path, const std::string& b) {
  size_t pos = 2;
  bool have_size = false;
  while (true) {
    while (pos < b.size() && uint8_t(b[pos]) == 0xFF && pos + 1 < b.size() && uint8_t(b[pos + 1]) == 0xFF) ++pos;
    NEPHRO_CHECK(pos + 4 <= b.size() && uint8_t(b[pos]) == 0xFF, "JPEG '", path, "' is truncated or corrupt (bad marker at byte ",
                 pos, ")");
    const uint8_t marker = uint8_t(b[pos + 1]);
    const size_t len = (size_t(uint8_t(b[pos + 2])) << 8) | uint8_t(b[pos + 3]);
    NEPHRO_CHECK(len >= 2 && pos + 2 + len <= b.size(), "JPEG '", path, "' is truncated (segment at byte ", pos,
                 " runs past the end of the file)");
    const bool sof = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (sof) {
      NEPHRO_CHECK(len >= 7, "JPEG '", path, "' is corrupt (short frame header)");
      const uint32_t h = (uint32_t(uint8_t(b[pos + 5])) << 8) | uint8_t(b[pos + 6]);
      const uint32_t w = (uint32_t(uint8_t(b[pos + 7])) << 8) | uint8_t(b[pos + 8]);
      check_dimensions(path, "JPEG", w, h);
      have_size = true;
    }
    if (marker == 0xDA) {  // start of scan: entropy-coded data follows
      NEPHRO_CHECK(have_size, "JPEG '", path, "' is corrupt (scan before the frame header)");
      const size_t eoi = b.rfind("\xff\xd9");
      NEPHRO_CHECK(eoi != std::string::npos && eoi > pos, "JPEG '", path,
                   "' is truncated (no end-of-image marker after the image data)");
      return;
    }
    pos += 2 + len;
  }
}

// PNM (P1..P6): width, height (and maxval) checked here, before OpenCV: its reader
// prints its own text to stderr for a malformed header ("imdecode_(''): can't read
// header: OpenCV(4.6.0) ... ReadNumber ...") and has no size limit of ours.
void check_pnm(const std::string& path, const std::string& b) {
  const char kind = b[1];
  const int fields = (kind == '1' || kind == '4') ? 2 : 3;
  const char* names[] = {"width", "height", "maxval"};
  uint64_t v[3] = {0, 0, 0};
  size_t pos = 2;
  for (int f = 0; f < fields; ++f) {
    while (pos < b.size()) {  // whitespace and # comments
      if (std::isspace(static_cast<unsigned char>(b[pos]))) {
        ++pos;
      } else if (b[pos] == '#') {
        while (pos < b.size() && b[pos] != '\n' && b[pos] != '\r') ++pos;
      } else {
        break;
      }
    }
    const size_t start = pos;
    while (pos < b.size() && b[pos] >= '0' && b[pos] <= '9' && pos - start < 10) v[f] = v[f] * 10 + (b[pos++] - '0');
    NEPHRO_CHECK(pos > start && pos < b.size() && (std::isspace(static_cast<unsigned char>(b[pos])) || b[pos] == '#'),
                 "PNM '", path, "' has a malformed or truncated header (the ", names[f], " at byte ", start,
                 " is not a number)");
  }
  check_dimensions(path, "PNM", v[0], v[1]);
  NEPHRO_CHECK(fields == 2 || (v[2] >= 1 && v[2] <= 65535), "PNM '", path, "' declares maxval ", v[2],
               " (expected 1..65535)");
}

// libtiff reports through global handlers; silence them and report through our errors.
void silence_libtiff() {
  static bool done = [] {
    TIFFSetErrorHandler(nullptr);
    TIFFSetWarningHandler(nullptr);
    return true;
  }();
  (void)done;
}

struct TiffCloser {
  void operator()(TIFF* t) const { if (t) TIFFClose(t); }
};
using TiffPtr = std::unique_ptr<TIFF, TiffCloser>;

TiffPtr open_tiff(const std::string& path, const char* mode) {
  silence_libtiff();
  TiffPtr tif(TIFFOpen(path.c_str(), mode));
  NEPHRO_CHECK(tif != nullptr, "cannot open TIFF '", path, "' (missing, truncated or not a TIFF file)");
  return tif;
}

// A DM image in the depths of read_image_raw (see image.h).
cv::Mat dm_to_raw(const DmImage& dm) {
  if (dm.pixels.depth() == CV_8U) return dm.pixels;  // uint8 grey, or RGBA
  if (dm.pixels.depth() == CV_16U) return dm.pixels;
  cv::Mat f;
  dm.pixels.convertTo(f, CV_32F);
  return f;
}

// Bytes of image data the current directory points at, each strip or tile clipped to
// the file: all that any decoder can read for it.
uint64_t tiff_stored_bytes(TIFF* tif, uint64_t file_size) {
  const bool tiled = TIFFIsTiled(tif) != 0;
  uint64_t* counts = nullptr;
  uint64_t* offsets = nullptr;
  if (!TIFFGetField(tif, tiled ? TIFFTAG_TILEBYTECOUNTS : TIFFTAG_STRIPBYTECOUNTS, &counts) ||
      !TIFFGetField(tif, tiled ? TIFFTAG_TILEOFFSETS : TIFFTAG_STRIPOFFSETS, &offsets) ||
      counts == nullptr || offsets == nullptr) {
    return 0;
  }
  const uint64_t n = tiled ? TIFFNumberOfTiles(tif) : TIFFNumberOfStrips(tif);
  uint64_t total = 0;
  for (uint64_t i = 0; i < n && total < file_size; ++i) {
    if (offsets[i] >= file_size) continue;
    total += std::min(counts[i], file_size - offsets[i]);
  }
  return std::min(total, file_size);
}

// Refuses a directory whose decoded size cannot come from the data the file holds
// (tiff_data_is_backed), before anything of that size is allocated. `packed_bytes`:
// the pixels as stored uncompressed; `decoded_bytes`: what the reader will allocate.
void check_tiff_data(TIFF* tif, const std::string& path, int page, uint64_t packed_bytes,
                     uint64_t decoded_bytes, uint16_t compression) {
  std::error_code ec;
  const uint64_t file_size = fs::file_size(path, ec);
  const uint64_t stored = ec ? 0 : tiff_stored_bytes(tif, file_size);
  const bool compressed = compression != COMPRESSION_NONE;
  const bool ok = tiff_data_is_backed(compressed ? decoded_bytes : packed_bytes, stored, compressed);
  NEPHRO_CHECK(ok, "TIFF '", path, "' page ", page, " declares ", packed_bytes,
               " bytes of pixels but holds ", stored, " bytes of ",
               compression == COMPRESSION_NONE ? "uncompressed" : "compressed",
               " image data (truncated or corrupt file)");
}

// Reads the current directory of an open TIFF into a Mat with file channel order.
cv::Mat read_tiff_directory(TIFF* tif, const std::string& path, int page) {
  uint32_t width = 0, height = 0;
  uint16_t bits = 1, spp = 1, planar = PLANARCONFIG_CONTIG, photometric = PHOTOMETRIC_MINISBLACK;
  uint16_t format = SAMPLEFORMAT_UINT, compression = COMPRESSION_NONE;
  TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &width);
  TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &height);
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bits);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
  TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &format);
  TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &compression);
  if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photometric)) photometric = PHOTOMETRIC_MINISBLACK;
  NEPHRO_CHECK(width > 0 && height > 0, "TIFF '", path, "' page ", page, " has no pixels");
  check_dimensions(path, "TIFF", width, height);
  NEPHRO_CHECK(spp >= 1 && spp <= 64, "TIFF '", path, "': unsupported samples per pixel ", spp);
  NEPHRO_CHECK(bits >= 1 && bits <= 64, "TIFF '", path, "': unsupported bits per sample ", bits);
  {
    const uint64_t row_bits = uint64_t{width} * spp * bits;
    const uint64_t packed = (row_bits + 7) / 8 * height;
    // What is allocated: RGBA for libtiff's colour conversion (the branch below), else
    // the samples, one byte per 1-bit sample.
    const bool via_rgba = (photometric == PHOTOMETRIC_YCBCR && compression != COMPRESSION_JPEG) ||
                          photometric == PHOTOMETRIC_SEPARATED || photometric == PHOTOMETRIC_CIELAB;
    const uint64_t decoded = via_rgba ? uint64_t{width} * height * 4
                                      : uint64_t{width} * height * spp * std::max<uint64_t>(1, bits / 8);
    check_tiff_data(tif, path, page, packed, decoded, compression);
  }

  if (photometric == PHOTOMETRIC_YCBCR && compression == COMPRESSION_JPEG) {
    TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
    photometric = PHOTOMETRIC_RGB;
  } else if (photometric == PHOTOMETRIC_YCBCR || photometric == PHOTOMETRIC_SEPARATED ||
             photometric == PHOTOMETRIC_CIELAB) {
    // Rare colour models: let libtiff convert to 8-bit RGBA.
    std::vector<uint32_t> raster(static_cast<size_t>(width) * height);
    NEPHRO_CHECK(TIFFReadRGBAImageOriented(tif, width, height, raster.data(), ORIENTATION_TOPLEFT, 0),
                 "cannot decode TIFF '", path, "' page ", page);
    cv::Mat out(static_cast<int>(height), static_cast<int>(width), CV_8UC3);
    for (uint32_t y = 0; y < height; ++y)
      for (uint32_t x = 0; x < width; ++x) {
        const uint32_t v = raster[static_cast<size_t>(y) * width + x];
        out.at<cv::Vec3b>(y, x) = cv::Vec3b(TIFFGetR(v), TIFFGetG(v), TIFFGetB(v));
      }
    return out;
  }

  int depth = -1;
  if (bits == 1 || bits == 8) depth = (format == SAMPLEFORMAT_INT) ? CV_8S : CV_8U;
  else if (bits == 16) depth = (format == SAMPLEFORMAT_INT) ? CV_16S : CV_16U;
  else if (bits == 32 && format == SAMPLEFORMAT_IEEEFP) depth = CV_32F;
  else if (bits == 32) depth = CV_32S;  // uint32 kept as int32 bits (labels < 2^31)
  NEPHRO_CHECK(depth >= 0, "TIFF '", path, "': unsupported sample layout (", bits,
               " bits, sample format ", format, "); supported: 1/8/16-bit integer, 32-bit int/float");
  const int channels = spp;
  cv::Mat out(static_cast<int>(height), static_cast<int>(width), CV_MAKETYPE(depth, channels));
  const size_t bytes_per_sample = bits == 1 ? 1 : bits / 8;

  auto put_row = [&](const uint8_t* src, int y, int x0, int count, int sample_or_all) {
    // sample_or_all < 0: interleaved samples; else one plane of a separate layout.
    uint8_t* dst = out.ptr<uint8_t>(y);
    const size_t px = bytes_per_sample * channels;
    if (bits == 1) {
      for (int i = 0; i < count; ++i) {
        for (int s = 0; s < (sample_or_all < 0 ? channels : 1); ++s) {
          const int bit = sample_or_all < 0 ? i * channels + s : i;
          const bool on = (src[bit / 8] >> (7 - bit % 8)) & 1;
          const int c = sample_or_all < 0 ? s : sample_or_all;
          dst[(x0 + i) * channels + c] = on ? 255 : 0;
        }
      }
      return;
    }
    if (sample_or_all < 0) {
      std::memcpy(dst + x0 * px, src, count * px);
    } else {
      for (int i = 0; i < count; ++i)
        std::memcpy(dst + (x0 + i) * px + sample_or_all * bytes_per_sample,
                    src + i * bytes_per_sample, bytes_per_sample);
    }
  };

  const int planes = planar == PLANARCONFIG_SEPARATE ? channels : 1;
  if (TIFFIsTiled(tif)) {
    uint32_t tw = 0, th = 0;
    TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
    const tmsize_t tile_bytes = TIFFTileSize(tif);
    NEPHRO_CHECK(tw > 0 && th > 0 && tile_bytes > 0 &&
                     static_cast<uint64_t>(tile_bytes) <=
                         std::max<uint64_t>(64ull << 20, 4 * static_cast<uint64_t>(out.total() * out.elemSize())),
                 "TIFF '", path, "' page ", page, " declares tiles of ", tw, " x ", th,
                 " pixels, out of proportion to its ", width, " x ", height, " image");
    std::vector<uint8_t> tile(static_cast<size_t>(tile_bytes));
    const size_t tile_row = TIFFTileRowSize(tif);
    for (int p = 0; p < planes; ++p)
      for (uint32_t ty = 0; ty < height; ty += th)
        for (uint32_t tx = 0; tx < width; tx += tw) {
          NEPHRO_CHECK(TIFFReadTile(tif, tile.data(), tx, ty, 0, static_cast<uint16_t>(p)) >= 0,
                       "cannot read tile (", tx, ",", ty, ") of TIFF '", path, "' page ", page);
          const int count = static_cast<int>(std::min(tw, width - tx));
          for (uint32_t r = 0; r < th && ty + r < height; ++r)
            put_row(tile.data() + r * tile_row, static_cast<int>(ty + r), static_cast<int>(tx), count,
                    planes > 1 ? p : -1);
        }
  } else {
    std::vector<uint8_t> line(TIFFScanlineSize(tif));
    for (int p = 0; p < planes; ++p)
      for (uint32_t y = 0; y < height; ++y) {
        NEPHRO_CHECK(TIFFReadScanline(tif, line.data(), y, static_cast<uint16_t>(p)) >= 0,
                     "cannot read row ", y, " of TIFF '", path, "' page ", page, " (corrupt file?)");
        put_row(line.data(), static_cast<int>(y), 0, static_cast<int>(width), planes > 1 ? p : -1);
      }
  }

  if (photometric == PHOTOMETRIC_MINISWHITE && channels == 1) {
    if (depth == CV_8U) cv::bitwise_not(out, out);
    else if (depth == CV_16U) out = cv::Scalar(65535) - out;
  }
  if (photometric == PHOTOMETRIC_PALETTE && channels == 1 && (depth == CV_8U || depth == CV_16U)) {
    uint16_t *red = nullptr, *green = nullptr, *blue = nullptr;
    NEPHRO_CHECK(TIFFGetField(tif, TIFFTAG_COLORMAP, &red, &green, &blue),
                 "palette TIFF '", path, "' has no colour map");
    cv::Mat rgb(out.rows, out.cols, CV_8UC3);
    for (int y = 0; y < out.rows; ++y)
      for (int x = 0; x < out.cols; ++x) {
        const int i = depth == CV_8U ? out.at<uint8_t>(y, x) : out.at<uint16_t>(y, x);
        rgb.at<cv::Vec3b>(y, x) = cv::Vec3b(red[i] >> 8, green[i] >> 8, blue[i] >> 8);
      }
    return rgb;
  }
  if (format == SAMPLEFORMAT_INT) out.convertTo(out, CV_32F);  // signed data: float
  return out;
}

double percentile_of(const cv::Mat& single, double q) {
  // single: one channel, any depth. Histogram for 8/16-bit, sort for float.
  if (single.depth() == CV_8U || single.depth() == CV_16U) {
    const int bins = single.depth() == CV_8U ? 256 : 65536;
    std::vector<int64_t> hist(bins, 0);
    for (int y = 0; y < single.rows; ++y) {
      if (single.depth() == CV_8U) {
        const uint8_t* p = single.ptr<uint8_t>(y);
        for (int x = 0; x < single.cols; ++x) ++hist[p[x]];
      } else {
        const uint16_t* p = single.ptr<uint16_t>(y);
        for (int x = 0; x < single.cols; ++x) ++hist[p[x]];
      }
    }
    const double total = static_cast<double>(single.total());
    const double target = q / 100.0 * (total - 1);
    int64_t cum = 0;
    for (int v = 0; v < bins; ++v) {
      cum += hist[v];
      if (static_cast<double>(cum) > target) return v;
    }
    return bins - 1;
  }
  cv::Mat f;
  single.convertTo(f, CV_32F);
  std::vector<float> values(f.begin<float>(), f.end<float>());
  values.erase(std::remove_if(values.begin(), values.end(), [](float v) { return !std::isfinite(v); }),
               values.end());
  if (values.empty()) return 0.0;
  const size_t k = static_cast<size_t>(std::llround(q / 100.0 * (values.size() - 1)));
  std::nth_element(values.begin(), values.begin() + k, values.end());
  return values[k];
}

}  // namespace

bool is_image_file(const std::string& path) {
  const std::string ext = lower_ext(path);
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".tif" || ext == ".tiff" || ext == ".dm3" ||
         ext == ".dm4";
}

std::vector<std::string> list_image_files(const std::string& dir) {
  std::error_code ec;
  NEPHRO_CHECK(fs::is_directory(dir, ec), "folder '", dir, "' does not exist");
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    if (!name.empty() && name[0] == '.') continue;  // hidden and temporary files
    if (is_image_file(name)) files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string image_format(const std::string& path) {
  switch (sniff(path)) {
    case Format::kEmpty: return "empty";
    case Format::kPng: return "png";
    case Format::kJpeg: return "jpeg";
    case Format::kTiff: return "tiff";
    case Format::kDm: {
      std::ifstream in(path, std::ios::binary);
      char h[4] = {};
      in.read(h, 4);
      return h[3] == 4 ? "dm4" : "dm3";
    }
    case Format::kOther: break;
  }
  return "other";
}

std::string file_stem(const std::string& path) { return fs::path(path).stem().string(); }

int count_pages(const std::string& path) {
  NEPHRO_CHECK(fs::is_regular_file(path), "image '", path, "' does not exist");
  if (sniff(path) != Format::kTiff) return 1;
  TiffPtr tif = open_tiff(path, "r");
  return static_cast<int>(TIFFNumberOfDirectories(tif.get()));
}

cv::Mat read_image_raw(const std::string& path, int page) {
  NEPHRO_CHECK(fs::is_regular_file(path), "image '", path, "' does not exist");
  NEPHRO_CHECK(page >= 0, "page must be >= 0 (got ", page, ") for '", path, "'");
  const Format format = sniff(path);
  NEPHRO_CHECK(format != Format::kEmpty, "image '", path, "' is empty (0 bytes)");
  if (format == Format::kTiff) {
    TiffPtr tif = open_tiff(path, "r");
    const int pages = static_cast<int>(TIFFNumberOfDirectories(tif.get()));
    NEPHRO_CHECK(page < pages, "TIFF '", path, "' has ", pages, " page(s); page ", page, " requested");
    NEPHRO_CHECK(TIFFSetDirectory(tif.get(), static_cast<tdir_t>(page)),
                 "cannot select page ", page, " of TIFF '", path, "'");
    return read_tiff_directory(tif.get(), path, page);
  }
  NEPHRO_CHECK(page == 0, "'", path, "' has one page; page ", page, " requested");
  const std::string bytes = read_bytes(path);
  if (format == Format::kDm) return dm_to_raw(read_dm_bytes(bytes, path));
  NEPHRO_CHECK(bytes.size() < (1u << 31), "image '", path, "' is larger than 2 GiB (", bytes.size(),
               " bytes): not supported for PNG/JPEG");
  if (format == Format::kPng) {
    check_png(path, bytes);
    return decode_png(path, bytes);  // RGB order already
  }
  if (format == Format::kJpeg) check_jpeg(path, bytes);
  const bool pnm = bytes.size() >= 2 && bytes[0] == 'P' && bytes[1] >= '1' && bytes[1] <= '6';
  const bool bmp = bytes.size() >= 2 && bytes[0] == 'B' && bytes[1] == 'M';
  const bool webp = bytes.size() >= 12 && bytes.compare(0, 4, "RIFF") == 0 && bytes.compare(8, 4, "WEBP") == 0;
  // Only the formats we check go to OpenCV: its other readers (DICOM through GDCM,
  // JPEG 2000, EXR, GDAL, ...) print to stderr and, for GDCM, abort the process on a
  // malformed file (fuzz_image, 2026-12-03).
  NEPHRO_CHECK(format == Format::kJpeg || pnm || bmp || webp, "cannot read image '", path,
               "' (corrupt or unsupported format; nephroseg reads PNG, JPEG, TIFF / OME-TIFF, "
               "DM3 / DM4, BMP, PNM and WebP, recognised by their first bytes, not the extension)");
  if (pnm) check_pnm(path, bytes);
  if (bmp) check_bmp(path, bytes);
  cv::Mat m;
  try {
    m = cv::imdecode(cv::_InputArray(reinterpret_cast<const uchar*>(bytes.data()), static_cast<int>(bytes.size())),
                     cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception&) {
    m = cv::Mat();
  }
  NEPHRO_CHECK(!m.empty(), "cannot read image '", path, "' (corrupt or unsupported format)");
  if (m.channels() == 3) cv::cvtColor(m, m, cv::COLOR_BGR2RGB);
  else if (m.channels() == 4) cv::cvtColor(m, m, cv::COLOR_BGRA2RGBA);
  return m;
}

cv::Mat read_image_raw(const std::string& path, const ImageReadOptions& options) {
  if (!options.pages_as_channels) return read_image_raw(path, options.page);
  const int pages = count_pages(path);
  std::vector<cv::Mat> planes;
  for (int p = 0; p < pages; ++p) {
    cv::Mat m = read_image_raw(path, p);
    NEPHRO_CHECK(m.channels() == 1, "pages_as_channels: page ", p, " of '", path, "' has ",
                 m.channels(), " channels (needs 1)");
    NEPHRO_CHECK(planes.empty() || (m.size() == planes[0].size() && m.type() == planes[0].type()),
                 "pages_as_channels: page ", p, " of '", path, "' differs in size or type from page 0");
    planes.push_back(m);
  }
  cv::Mat out;
  cv::merge(planes, out);
  return out;
}

cv::Mat to_rgb8(const cv::Mat& raw, const ImageReadOptions& options) {
  NEPHRO_CHECK(!raw.empty(), "to_rgb8: empty image");
  const int n = raw.channels();
  std::vector<int> sel = options.channels;
  if (sel.empty()) {
    if (n == 1) sel = {0, 0, 0};
    else if (n == 2) sel = {0, 1, -1};
    else sel = {0, 1, 2};
  }
  NEPHRO_CHECK(sel.size() <= 3, "channel selection lists at most 3 channels (R, G, B); got ", sel.size());
  while (sel.size() < 3) sel.push_back(-1);
  for (int c : sel)
    NEPHRO_CHECK(c >= -1 && c < n, "channel ", c, " requested but the image has ", n, " channel(s)");
  std::vector<cv::Mat> planes;
  cv::split(raw, planes);
  const bool eight_bit = raw.depth() == CV_8U;
  std::vector<cv::Mat> out_planes(3);
  for (int k = 0; k < 3; ++k) {
    if (sel[k] < 0) {
      out_planes[k] = cv::Mat::zeros(raw.size(), CV_8U);
      continue;
    }
    const cv::Mat& src = planes[sel[k]];
    double lo = 0, hi = 255;
    switch (options.window) {
      case WindowMode::kAuto:
        if (!eight_bit) {
          lo = percentile_of(src, options.percentile_low);
          hi = percentile_of(src, options.percentile_high);
        }
        break;
      case WindowMode::kPercentile:
        NEPHRO_CHECK(options.percentile_low >= 0 && options.percentile_high <= 100 &&
                         options.percentile_low < options.percentile_high,
                     "percentile window must satisfy 0 <= low < high <= 100");
        lo = percentile_of(src, options.percentile_low);
        hi = percentile_of(src, options.percentile_high);
        break;
      case WindowMode::kMinMax:
        NEPHRO_CHECK(options.window_max > options.window_min, "intensity window max (",
                     options.window_max, ") must exceed min (", options.window_min, ")");
        lo = options.window_min;
        hi = options.window_max;
        break;
      case WindowMode::kFullRange:
        lo = 0;
        hi = raw.depth() == CV_8U ? 255 : raw.depth() == CV_16U ? 65535 : 1.0;
        break;
    }
    if (hi <= lo) hi = lo + 1;  // flat channel: everything at the low end
    const double scale = 255.0 / (hi - lo);
    src.convertTo(out_planes[k], CV_8U, scale, -lo * scale);  // saturating
  }
  cv::Mat rgb;
  cv::merge(out_planes, rgb);
  return rgb;
}

cv::Mat read_image_rgb(const std::string& path, const ImageReadOptions& options) {
  return to_rgb8(read_image_raw(path, options), options);
}

cv::Mat read_image_grey(const std::string& path, const ImageReadOptions& options) {
  cv::Mat raw = read_image_raw(path, options);
  if (raw.channels() == 1 || options.channels.size() == 1) {
    ImageReadOptions one = options;
    if (one.channels.empty()) one.channels = {0};
    one.channels = {one.channels[0], one.channels[0], one.channels[0]};
    cv::Mat rgb = to_rgb8(raw, one);
    cv::Mat grey;
    cv::extractChannel(rgb, grey, 0);
    return grey;
  }
  cv::Mat rgb = to_rgb8(raw, options), grey;
  cv::cvtColor(rgb, grey, cv::COLOR_RGB2GRAY);
  return grey;
}

namespace {
cv::Mat to_bgr_for_opencv(const cv::Mat& image) {
  cv::Mat out;
  if (image.channels() == 3) cv::cvtColor(image, out, cv::COLOR_RGB2BGR);
  else if (image.channels() == 4) cv::cvtColor(image, out, cv::COLOR_RGBA2BGRA);
  else out = image;
  return out;
}
}  // namespace

void write_png(const std::string& path, const cv::Mat& image) {
  NEPHRO_CHECK(!image.empty(), "write_png: empty image for '", path, "'");
  NEPHRO_CHECK(image.depth() == CV_8U || (image.depth() == CV_16U),
               "write_png: '", path, "' needs an 8-bit or 16-bit image");
  const std::string bytes = [&] {
    std::vector<uchar> buf;
    NEPHRO_CHECK(cv::imencode(".png", to_bgr_for_opencv(image), buf), "cannot encode PNG '", path, "'");
    return std::string(buf.begin(), buf.end());
  }();
  write_file_atomically(path, bytes);
}

std::string encode_png(const cv::Mat& image) {
  NEPHRO_CHECK(!image.empty(), "encode_png: empty image");
  std::vector<uchar> buf;
  NEPHRO_CHECK(cv::imencode(".png", to_bgr_for_opencv(image), buf), "cannot encode PNG");
  return std::string(buf.begin(), buf.end());
}

std::string base64_encode(const std::string& bytes) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = uint8_t(bytes[i]) << 16;
    if (rest == 2) v |= uint8_t(bytes[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string png_data_uri(const cv::Mat& image) {
  return "data:image/png;base64," + base64_encode(encode_png(image));
}

void write_tiff(const std::string& path, const std::vector<cv::Mat>& pages) {
  NEPHRO_CHECK(!pages.empty(), "write_tiff: no pages for '", path, "'");
  for (const cv::Mat& m : pages) {
    NEPHRO_CHECK(!m.empty() && (m.channels() == 1 || m.channels() == 3),
                 "write_tiff: '", path, "' pages must have 1 or 3 channels");
    NEPHRO_CHECK(m.depth() == CV_8U || m.depth() == CV_16U || m.depth() == CV_32S ||
                     (m.depth() == CV_32F && m.channels() == 1),
                 "write_tiff: '", path, "' pages must be 8U, 16U, 32S or 32F");
  }
  write_atomically(path, [&](const std::string& tmp) {
    TiffPtr tif = open_tiff(tmp, pages.size() > 1 ? "w" : "w");
    for (size_t p = 0; p < pages.size(); ++p) {
      const cv::Mat m = pages[p].isContinuous() ? pages[p] : pages[p].clone();
      const uint16_t bits = static_cast<uint16_t>(m.elemSize1() * 8);
      const uint16_t format = m.depth() == CV_32F ? SAMPLEFORMAT_IEEEFP
                              : m.depth() == CV_32S ? SAMPLEFORMAT_INT : SAMPLEFORMAT_UINT;
      TIFFSetField(tif.get(), TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(m.cols));
      TIFFSetField(tif.get(), TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(m.rows));
      TIFFSetField(tif.get(), TIFFTAG_BITSPERSAMPLE, bits);
      TIFFSetField(tif.get(), TIFFTAG_SAMPLESPERPIXEL, static_cast<uint16_t>(m.channels()));
      TIFFSetField(tif.get(), TIFFTAG_SAMPLEFORMAT, format);
      TIFFSetField(tif.get(), TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
      TIFFSetField(tif.get(), TIFFTAG_PHOTOMETRIC,
                   m.channels() == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
      TIFFSetField(tif.get(), TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
      TIFFSetField(tif.get(), TIFFTAG_ROWSPERSTRIP, TIFFDefaultStripSize(tif.get(), 0));
      if (pages.size() > 1) {
        TIFFSetField(tif.get(), TIFFTAG_SUBFILETYPE, FILETYPE_PAGE);
        TIFFSetField(tif.get(), TIFFTAG_PAGENUMBER, static_cast<uint16_t>(p),
                     static_cast<uint16_t>(pages.size()));
      }
      for (int y = 0; y < m.rows; ++y)
        NEPHRO_CHECK(TIFFWriteScanline(tif.get(), const_cast<uint8_t*>(m.ptr<uint8_t>(y)),
                                       static_cast<uint32_t>(y), 0) >= 0,
                     "cannot write row ", y, " of TIFF '", path, "'");
      NEPHRO_CHECK(TIFFWriteDirectory(tif.get()), "cannot finish page ", p, " of TIFF '", path, "'");
    }
  });
}

}  // namespace nephroseg::io
