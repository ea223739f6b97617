#include "nephroseg/io/image.h"

#include <tiffio.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "nephroseg/core/error.h"
#include "nephroseg/core/atomic_file.h"

namespace fs = std::filesystem;

namespace nephroseg::io {

namespace {

std::string lower_ext(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

bool is_tiff(const std::string& path) {
  const std::string ext = lower_ext(path);
  return ext == ".tif" || ext == ".tiff";
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
  NEPHRO_CHECK(tif != nullptr, "cannot open TIFF '", path, "' (missing or not a TIFF file)");
  return tif;
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
  NEPHRO_CHECK(spp >= 1 && spp <= 64, "TIFF '", path, "': unsupported samples per pixel ", spp);

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
    std::vector<uint8_t> tile(TIFFTileSize(tif));
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
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".tif" || ext == ".tiff";
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

std::string file_stem(const std::string& path) { return fs::path(path).stem().string(); }

int count_pages(const std::string& path) {
  NEPHRO_CHECK(fs::is_regular_file(path), "image '", path, "' does not exist");
  if (!is_tiff(path)) return 1;
  TiffPtr tif = open_tiff(path, "r");
  return static_cast<int>(TIFFNumberOfDirectories(tif.get()));
}

cv::Mat read_image_raw(const std::string& path, int page) {
  NEPHRO_CHECK(fs::is_regular_file(path), "image '", path, "' does not exist");
  NEPHRO_CHECK(page >= 0, "page must be >= 0 (got ", page, ") for '", path, "'");
  if (is_tiff(path)) {
    TiffPtr tif = open_tiff(path, "r");
    const int pages = static_cast<int>(TIFFNumberOfDirectories(tif.get()));
    NEPHRO_CHECK(page < pages, "TIFF '", path, "' has ", pages, " page(s); page ", page, " requested");
    NEPHRO_CHECK(TIFFSetDirectory(tif.get(), static_cast<tdir_t>(page)),
                 "cannot select page ", page, " of TIFF '", path, "'");
    return read_tiff_directory(tif.get(), path, page);
  }
  NEPHRO_CHECK(page == 0, "'", path, "' has one page; page ", page, " requested");
  cv::Mat m = cv::imread(path, cv::IMREAD_UNCHANGED);
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
