// Slide readers: OpenSlide, libtiff (OME-)TIFF pyramids, and plain images.
#include "nephroseg/slide/reader.h"

#include <nlohmann/json.hpp>

#include <openslide.h>
#include <tiffio.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "nephroseg/core/error.h"
#include "nephroseg/io/ome_xml.h"
#include "nephroseg/io/image.h"
#include "slide/tiff_layout.h"

namespace fs = std::filesystem;

namespace nephroseg::slide {
namespace {

std::string lower_ext(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

void check_region(const SlideInfo& info, int level, const cv::Rect& rect) {
  NEPHRO_CHECK(level >= 0 && level < static_cast<int>(info.levels.size()), "slide '", info.path,
               "': level ", level, " out of range (the slide has ", info.levels.size(), " levels)");
  NEPHRO_CHECK(rect.width > 0 && rect.height > 0, "slide '", info.path, "': empty region requested");
}

// ---------------------------------------------------------------------------------
// OpenSlide

// 8192 x 8192: a 256 MiB decode. Scanners write 240-1024 px tiles.
constexpr double kMaxOpenSlideTilePixels = 8192.0 * 8192.0;

class OpenSlideReader : public SlideReader {
 public:
  OpenSlideReader(const std::string& path, const char* vendor) {
    osr_ = openslide_open(path.c_str());
    NEPHRO_CHECK(osr_ != nullptr, "slide '", path, "': OpenSlide cannot open it (unsupported or corrupt)");
    owner_.reset(osr_);  // closes it if this constructor throws
    if (const char* err = openslide_get_error(osr_)) NEPHRO_FAIL("slide '", path, "': OpenSlide: ", err);
    info_.path = path;
    info_.backend = "openslide";
    info_.vendor = vendor ? vendor : "";
    const int32_t n = openslide_get_level_count(osr_);
    NEPHRO_CHECK(n > 0, "slide '", path, "': OpenSlide reports no levels");
    for (int32_t i = 0; i < n; ++i) {
      SlideLevel l;
      openslide_get_level_dimensions(osr_, i, &l.width, &l.height);
      l.downsample = openslide_get_level_downsample(osr_, i);
      info_.levels.push_back(l);
      // OpenSlide decodes a whole tile (4 bytes a pixel) for any pixel of it, at the
      // size the header declares: a few-KB file can declare 65535 x 65535 tiles.
      const std::string key = "openslide.level[" + std::to_string(i) + "].tile-";
      const char* tw = openslide_get_property_value(osr_, (key + "width").c_str());
      const char* th = openslide_get_property_value(osr_, (key + "height").c_str());
      if (tw && th) {
        const double pixels = std::atof(tw) * std::atof(th);
        NEPHRO_CHECK(pixels <= kMaxOpenSlideTilePixels, "slide '", path, "': level ", i, " declares ", tw, " x ", th,
                     " pixel tiles, more than the ", kMaxOpenSlideTilePixels, " pixels a tile nephroseg accepts",
                     " (corrupt file?)");
      }
    }
    auto prop = [&](const char* name) {
      const char* v = openslide_get_property_value(osr_, name);
      return v ? std::atof(v) : 0.0;
    };
    info_.mpp_x = prop(OPENSLIDE_PROPERTY_NAME_MPP_X);
    info_.mpp_y = prop(OPENSLIDE_PROPERTY_NAME_MPP_Y);
    info_.objective_power = prop(OPENSLIDE_PROPERTY_NAME_OBJECTIVE_POWER);
    info_.channels = 3;
    info_.depth = 8;
    info_.channel_names = {"Red", "Green", "Blue"};
  }

  cv::Mat read_region(int level, const cv::Rect& rect) override {
    check_region(info_, level, rect);
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<uint32_t> argb(static_cast<size_t>(rect.width) * rect.height);
    const double ds = info_.levels[level].downsample;
    // OpenSlide takes the top-left corner in level-0 pixels.
    openslide_read_region(osr_, argb.data(), static_cast<int64_t>(std::llround(rect.x * ds)),
                          static_cast<int64_t>(std::llround(rect.y * ds)), level, rect.width, rect.height);
    if (const char* err = openslide_get_error(osr_))
      NEPHRO_FAIL("slide '", info_.path, "': OpenSlide read failed: ", err);
    cv::Mat out(rect.height, rect.width, CV_8UC3);
    for (int y = 0; y < rect.height; ++y) {
      auto* row = out.ptr<uint8_t>(y);
      const uint32_t* src = argb.data() + static_cast<size_t>(y) * rect.width;
      for (int x = 0; x < rect.width; ++x) {
        const uint32_t p = src[x];
        const int a = static_cast<int>(p >> 24);
        // Premultiplied colour composited on white: c + (255 - a).
        row[3 * x + 0] = static_cast<uint8_t>(std::min(255, static_cast<int>((p >> 16) & 0xff) + 255 - a));
        row[3 * x + 1] = static_cast<uint8_t>(std::min(255, static_cast<int>((p >> 8) & 0xff) + 255 - a));
        row[3 * x + 2] = static_cast<uint8_t>(std::min(255, static_cast<int>(p & 0xff) + 255 - a));
      }
    }
    return out;
  }

 private:
  struct Closer {
    void operator()(openslide_t* o) const { openslide_close(o); }
  };
  openslide_t* osr_ = nullptr;
  std::unique_ptr<openslide_t, Closer> owner_;  // closes osr_
  std::mutex mutex_;
};

// ---------------------------------------------------------------------------------
// libtiff

thread_local std::string tiff_last_error;

void tiff_error_handler(const char* module, const char* fmt, va_list ap) {
  char buf[512];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  tiff_last_error = std::string(module ? module : "") + (module ? ": " : "") + buf;
}

void install_tiff_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    TIFFSetErrorHandler(tiff_error_handler);
    TIFFSetWarningHandler(nullptr);  // the library never prints
  });
}

// One stored plane: a directory of the main chain, or a SubIFD at an offset.
struct DirRef {
  bool sub = false;
  tdir_t index = 0;
  toff_t offset = 0;
};

struct TiffLevel {
  std::vector<DirRef> planes;  // one (contiguous samples) or one per channel (OME pages)
  uint32_t width = 0, height = 0;
};

double unit_to_um(const std::string& unit) {
  if (unit.empty() || unit == "µm" || unit == "\xC2\xB5m" || unit == "um" || unit == "micron") return 1.0;
  if (unit == "nm") return 1e-3;
  if (unit == "mm") return 1e3;
  if (unit == "cm") return 1e4;
  if (unit == "m") return 1e6;
  if (unit == "Å") return 1e-4;
  return 0.0;  // unknown unit: treat as not recorded
}

class TiffReader : public SlideReader {
 public:
  explicit TiffReader(const std::string& path) {
    install_tiff_handlers();
    tiff_last_error.clear();
    tif_ = TIFFOpen(path.c_str(), "rm");
    NEPHRO_CHECK(tif_ != nullptr, "slide '", path, "': not a TIFF, OpenSlide or PNG/JPEG file libtiff can read",
                 tiff_last_error.empty() ? "" : " (" + tiff_last_error + ")");
    // Owned by a member from here on, so that an error later in this constructor closes
    // it (the destructor does not run then; fuzz_slide found the leak).
    owner_.reset(tif_);
    std::error_code ec;
    file_size_ = fs::file_size(path, ec);
    if (ec) file_size_ = 0;
    info_.path = path;
    info_.backend = "tiff";
    info_.vendor = "tiff";
    DirInfo d0 = dir_info(path);
    char* desc = nullptr;
    std::string ome;
    if (TIFFGetField(tif_, TIFFTAG_IMAGEDESCRIPTION, &desc) && desc && std::strstr(desc, "<OME")) {
      ome = desc;
      info_.vendor = "ome-tiff";
    }
    int size_c = d0.spp;
    if (!ome.empty()) {
      if (const auto pixels = io::read_ome_pixels(ome, "slide '" + path + "'")) {
        if (!pixels->size_c.empty()) size_c = std::max(1, std::atoi(pixels->size_c.c_str()));
        const double ux = unit_to_um(pixels->unit_x), uy = unit_to_um(pixels->unit_y);
        if (!pixels->physical_size_x.empty()) info_.mpp_x = std::atof(pixels->physical_size_x.c_str()) * ux;
        if (!pixels->physical_size_y.empty()) info_.mpp_y = std::atof(pixels->physical_size_y.c_str()) * uy;
        info_.channel_names = pixels->channel_names;
      }
    } else {
      float xres = 0, yres = 0;
      uint16_t unit = RESUNIT_NONE;
      TIFFGetFieldDefaulted(tif_, TIFFTAG_RESOLUTIONUNIT, &unit);
      if (TIFFGetField(tif_, TIFFTAG_XRESOLUTION, &xres) && TIFFGetField(tif_, TIFFTAG_YRESOLUTION, &yres) &&
          xres > 0 && yres > 0) {
        const double per = unit == RESUNIT_CENTIMETER ? 1e4 : unit == RESUNIT_INCH ? 25400.0 : 0.0;
        // 72 dpi and similar screen defaults are not microscope calibrations.
        if (per > 0 && per / xres < 50.0) {
          info_.mpp_x = per / xres;
          info_.mpp_y = per / yres;
        }
      }
    }
    const int num_pages = static_cast<int>(TIFFNumberOfDirectories(tif_));
    const bool channels_as_pages = !ome.empty() && size_c > 1 && d0.spp == 1 && num_pages >= size_c;
    const int planes = channels_as_pages ? size_c : 1;
    info_.channels = channels_as_pages ? size_c : d0.spp;
    info_.depth = d0.bps;
    if (d0.spp == 4 && d0.photometric == PHOTOMETRIC_RGB) info_.channels = 3;  // alpha dropped
    // Level 0: pages 0..planes-1. Further levels: the SubIFDs of each plane, or (no
    // SubIFDs, not channel pages) further pages of decreasing size.
    TiffLevel l0;
    l0.width = d0.width;
    l0.height = d0.height;
    for (int c = 0; c < planes; ++c) l0.planes.push_back({false, static_cast<tdir_t>(c), 0});
    levels_.push_back(l0);
    std::vector<std::vector<toff_t>> subifds(planes);
    for (int c = 0; c < planes; ++c) {
      set_dir({false, static_cast<tdir_t>(c), 0});
      uint16_t n = 0;
      toff_t* offs = nullptr;
      if (TIFFGetField(tif_, TIFFTAG_SUBIFD, &n, &offs) && n > 0) subifds[c].assign(offs, offs + n);
    }
    if (!subifds[0].empty()) {
      for (size_t k = 0; k < subifds[0].size(); ++k) {
        TiffLevel l;
        for (int c = 0; c < planes; ++c) {
          NEPHRO_CHECK(subifds[c].size() == subifds[0].size(), "slide '", path,
                       "': channel pages have different pyramid depths");
          l.planes.push_back({true, 0, subifds[c][k]});
        }
        set_dir(l.planes[0]);
        DirInfo d = dir_info(path);
        l.width = d.width;
        l.height = d.height;
        levels_.push_back(l);
      }
    } else if (!channels_as_pages) {
      for (int p = 1; p < num_pages; ++p) {
        set_dir({false, static_cast<tdir_t>(p), 0});
        DirInfo d = dir_info(path, /*strict=*/false);
        if (!d.ok || d.spp != d0.spp || d.bps != d0.bps || d.width >= levels_.back().width ||
            d.height >= levels_.back().height)
          break;
        levels_.push_back({{{false, static_cast<tdir_t>(p), 0}}, d.width, d.height});
      }
    }
    for (const auto& l : levels_)
      info_.levels.push_back({l.width, l.height, static_cast<double>(d0.width) / l.width});
    if (info_.channel_names.size() != static_cast<size_t>(info_.channels)) {
      info_.channel_names.clear();
      for (int c = 0; c < info_.channels; ++c)
        info_.channel_names.push_back(info_.channels == 3 && d0.photometric == PHOTOMETRIC_RGB
                                          ? std::string(c == 0 ? "Red" : c == 1 ? "Green" : "Blue")
                                          : "Channel " + std::to_string(c));
    }
  }

  cv::Mat read_region(int level, const cv::Rect& rect) override {
    check_region(info_, level, rect);
    std::lock_guard<std::mutex> lock(mutex_);
    const TiffLevel& l = levels_[level];
    std::vector<cv::Mat> planes;
    for (const auto& ref : l.planes) planes.push_back(read_plane(ref, rect));
    if (planes.size() == 1) return planes[0];
    cv::Mat out;
    cv::merge(planes, out);
    return out;
  }

 private:
  struct DirInfo {
    bool ok = true;
    uint32_t width = 0, height = 0;
    int spp = 1, bps = 8;
    uint16_t photometric = 0;
  };

  DirInfo dir_info(const std::string& path, bool strict = true) {
    DirInfo d;
    uint16_t spp = 1, bps = 1, fmt = SAMPLEFORMAT_UINT, planar = PLANARCONFIG_CONTIG, photometric = 0, compression = 0;
    TIFFGetField(tif_, TIFFTAG_IMAGEWIDTH, &d.width);
    TIFFGetField(tif_, TIFFTAG_IMAGELENGTH, &d.height);
    TIFFGetFieldDefaulted(tif_, TIFFTAG_SAMPLESPERPIXEL, &spp);
    TIFFGetFieldDefaulted(tif_, TIFFTAG_BITSPERSAMPLE, &bps);
    TIFFGetFieldDefaulted(tif_, TIFFTAG_SAMPLEFORMAT, &fmt);
    TIFFGetFieldDefaulted(tif_, TIFFTAG_PLANARCONFIG, &planar);
    TIFFGetField(tif_, TIFFTAG_PHOTOMETRIC, &photometric);
    TIFFGetFieldDefaulted(tif_, TIFFTAG_COMPRESSION, &compression);
    d.spp = spp;
    d.bps = bps;
    d.photometric = photometric;
    const bool supported = (bps == 8 || bps == 16) && fmt == SAMPLEFORMAT_UINT && planar == PLANARCONFIG_CONTIG &&
                           photometric != PHOTOMETRIC_PALETTE && d.width > 0 && d.height > 0;
    if (!supported) {
      d.ok = false;
      NEPHRO_CHECK(!strict, "slide '", path, "': unsupported TIFF layout (", bps, "-bit, sample format ", fmt,
                   ", planar config ", planar, ", photometric ", photometric,
                   "); supported: 8/16-bit unsigned, contiguous samples, no palette");
    }
    if (photometric == PHOTOMETRIC_YCBCR && compression == COMPRESSION_JPEG)
      TIFFSetField(tif_, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
    return d;
  }

  void set_dir(const DirRef& ref) {
    const bool ok = ref.sub ? TIFFSetSubDirectory(tif_, ref.offset) : TIFFSetDirectory(tif_, ref.index);
    NEPHRO_CHECK(ok, "slide '", info_.path, "': cannot read TIFF directory (corrupt file?)");
  }

  cv::Mat read_plane(const DirRef& ref, const cv::Rect& rect) {
    set_dir(ref);
    DirInfo d = dir_info(info_.path);
    const int bytes = d.bps / 8;
    const int type = CV_MAKETYPE(d.bps == 16 ? CV_16U : CV_8U, d.spp);
    cv::Mat out = cv::Mat::zeros(rect.height, rect.width, type);
    const cv::Rect inside = rect & cv::Rect(0, 0, static_cast<int>(d.width), static_cast<int>(d.height));
    if (inside.empty()) return keep_channels(out);
    const size_t pixel = static_cast<size_t>(bytes) * d.spp;
    auto copy_block = [&](const uint8_t* block, const cv::Rect& block_rect, size_t block_stride) {
      const cv::Rect part = block_rect & inside;
      for (int y = part.y; y < part.y + part.height; ++y) {
        const uint8_t* src = block + static_cast<size_t>(y - block_rect.y) * block_stride +
                             static_cast<size_t>(part.x - block_rect.x) * pixel;
        std::memcpy(out.ptr<uint8_t>(y - rect.y) + static_cast<size_t>(part.x - rect.x) * pixel, src,
                    part.width * pixel);
      }
    };
    tiff_last_error.clear();
    if (TIFFIsTiled(tif_)) {
      uint32_t tw = 0, th = 0;
      TIFFGetField(tif_, TIFFTAG_TILEWIDTH, &tw);
      TIFFGetField(tif_, TIFFTAG_TILELENGTH, &th);
      std::vector<uint8_t> buf;
      for (uint32_t ty = inside.y / th * th; ty < static_cast<uint32_t>(inside.y + inside.height); ty += th)
        for (uint32_t tx = inside.x / tw * tw; tx < static_cast<uint32_t>(inside.x + inside.width); tx += tw) {
          const uint32_t tile = TIFFComputeTile(tif_, tx, ty, 0, 0);
          const uint64_t decoded = TIFFTileSize64(tif_);
          check_chunk("tile", tile, decoded);
          buf.resize(static_cast<size_t>(decoded));
          const tmsize_t n = TIFFReadEncodedTile(tif_, tile, buf.data(), static_cast<tmsize_t>(buf.size()));
          NEPHRO_CHECK(n >= 0, "slide '", info_.path, "': cannot decode TIFF tile at (", tx, ", ", ty,
                       ") (corrupt file?) ", tiff_last_error);
          copy_block(buf.data(), cv::Rect(tx, ty, tw, th), static_cast<size_t>(tw) * pixel);
        }
    } else {
      uint32_t rps = 0;
      TIFFGetFieldDefaulted(tif_, TIFFTAG_ROWSPERSTRIP, &rps);
      rps = std::min(rps, d.height);
      std::vector<uint8_t> buf;
      for (uint32_t sy = inside.y / rps * rps; sy < static_cast<uint32_t>(inside.y + inside.height); sy += rps) {
        const uint32_t strip = TIFFComputeStrip(tif_, sy, 0);
        // The last strip may hold fewer rows: its buffer is what it decodes to.
        const uint64_t decoded = TIFFVStripSize64(tif_, std::min(rps, d.height - sy));
        check_chunk("strip", strip, decoded);
        buf.resize(static_cast<size_t>(decoded));
        const tmsize_t n = TIFFReadEncodedStrip(tif_, strip, buf.data(), static_cast<tmsize_t>(buf.size()));
        NEPHRO_CHECK(n >= 0, "slide '", info_.path, "': cannot decode TIFF strip at row ", sy,
                     " (corrupt file?) ", tiff_last_error);
        copy_block(buf.data(), cv::Rect(0, sy, d.width, rps), static_cast<size_t>(d.width) * pixel);
      }
    }
    return keep_channels(out);
  }

  // A tile or strip is decoded into a buffer of the size the directory declares, so the
  // file must back that size before it is allocated (io::tiff_data_is_backed, counting
  // only the chunk's bytes that lie inside the file; fuzz_slide: a 5 KB file declared
  // 3 GB tiles).
  void check_chunk(const char* kind, uint32_t index, uint64_t decoded) {
    uint16_t compression = COMPRESSION_NONE;
    TIFFGetFieldDefaulted(tif_, TIFFTAG_COMPRESSION, &compression);
    // What the file holds of the chunk: its declared byte count is only a number.
    const uint64_t offset = TIFFGetStrileOffset(tif_, index);
    const uint64_t declared = TIFFGetStrileByteCount(tif_, index);
    const uint64_t stored = offset >= file_size_ ? 0 : std::min(declared, file_size_ - offset);
    NEPHRO_CHECK(decoded > 0, "slide '", info_.path, "': TIFF ", kind, " ", index,
                 " has no decodable size (corrupt file?)");
    const bool ok = io::tiff_data_is_backed(decoded, stored, compression != COMPRESSION_NONE);
    NEPHRO_CHECK(ok, "slide '", info_.path, "': TIFF ", kind, " ", index, " declares ", decoded,
                 " decoded bytes but stores ", stored, (compression == COMPRESSION_NONE ? "" : " compressed"),
                 " (corrupt or truncated file?)");
  }

  // RGBA files are read as RGB (alpha dropped), as in io::to_rgb8's default rule.
  cv::Mat keep_channels(const cv::Mat& m) const {
    if (m.channels() == 4 && info_.channels == 3) {
      cv::Mat rgb;
      cv::cvtColor(m, rgb, cv::COLOR_RGBA2RGB);
      return rgb;
    }
    return m;
  }

  struct Closer {
    void operator()(TIFF* t) const { TIFFClose(t); }
  };
  TIFF* tif_ = nullptr;
  std::unique_ptr<TIFF, Closer> owner_;  // closes tif_
  uint64_t file_size_ = 0;
  std::vector<TiffLevel> levels_;
  std::mutex mutex_;
};

// ---------------------------------------------------------------------------------
// PNG / JPEG

class ImageSlideReader : public SlideReader {
 public:
  explicit ImageSlideReader(const std::string& path) {
    // The io layer's reader: its header checks and size limits, and libpng / OpenCV
    // failures as one error of ours (cv::imread printed "libpng error: Read Error").
    cv::Mat m = io::read_image_raw(path);  // RGB(A) order; errors name the file
    NEPHRO_CHECK(m.depth() == CV_8U || m.depth() == CV_16U, "slide '", path, "': only 8/16-bit images are supported");
    if (m.channels() == 4) cv::cvtColor(m, m, cv::COLOR_RGBA2RGB);
    image_ = m;
    info_.path = path;
    info_.backend = "image";
    info_.vendor = lower_ext(path).substr(1);
    info_.levels.push_back({m.cols, m.rows, 1.0});
    info_.channels = m.channels();
    info_.depth = m.depth() == CV_16U ? 16 : 8;
    for (int c = 0; c < info_.channels; ++c)
      info_.channel_names.push_back(info_.channels == 3 ? std::string(c == 0 ? "Red" : c == 1 ? "Green" : "Blue")
                                                        : "Channel " + std::to_string(c));
  }
  cv::Mat read_region(int level, const cv::Rect& rect) override {
    check_region(info_, level, rect);
    cv::Mat out = cv::Mat::zeros(rect.height, rect.width, image_.type());
    const cv::Rect inside = rect & cv::Rect(0, 0, image_.cols, image_.rows);
    if (!inside.empty()) image_(inside).copyTo(out(inside - rect.tl()));
    return out;
  }

 private:
  cv::Mat image_;
};

}  // namespace

bool is_slide_file(const std::string& path) {
  static const char* exts[] = {".svs", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".svslide", ".bif",
                               ".tif", ".tiff", ".png", ".jpg", ".jpeg"};
  const std::string ext = lower_ext(path);
  return std::any_of(std::begin(exts), std::end(exts), [&](const char* e) { return ext == e; });
}

std::string slide_info_json(const SlideInfo& info) {
  nlohmann::ordered_json j;
  j["reader"] = info.backend;
  j["vendor"] = info.vendor;
  nlohmann::ordered_json levels = nlohmann::ordered_json::array();
  for (const auto& l : info.levels)
    levels.push_back({{"width", l.width}, {"height", l.height}, {"downsample", l.downsample}});
  j["levels"] = levels;
  auto or_null = [](double v) { return v > 0 ? nlohmann::ordered_json(v) : nlohmann::ordered_json(); };
  j["mpp_x"] = or_null(info.mpp_x);
  j["mpp_y"] = or_null(info.mpp_y);
  j["objective_power"] = or_null(info.objective_power);
  j["channels"] = info.channels;
  j["depth"] = info.depth;
  j["channel_names"] = info.channel_names;
  return j.dump();
}

std::optional<SlideInfo> probe_slide(const std::string& path) {
  if (!is_slide_file(path)) return std::nullopt;
  const std::string ext = lower_ext(path);
  if (ext == ".png" || ext == ".jpg" || ext == ".jpeg") return std::nullopt;
  try {
    const std::unique_ptr<SlideReader> r = open_slide(path);
    if (r->info().backend == "openslide" || r->info().levels.size() > 1) return r->info();
  } catch (const Error&) {
    // not a slide this reader opens: the image readers say what is wrong
  }
  return std::nullopt;
}

namespace {

std::unique_ptr<SlideReader> open_by_content(const std::string& path) {
  const std::string ext = lower_ext(path);
  if (ext == ".png" || ext == ".jpg" || ext == ".jpeg") return std::make_unique<ImageSlideReader>(path);
  check_tiff_layout(path);  // before OpenSlide's TIFF parser allocates what the file declares
  const char* vendor = openslide_detect_vendor(path.c_str());
  if (vendor && std::strcmp(vendor, "generic-tiff") != 0) return std::make_unique<OpenSlideReader>(path, vendor);
  char magic[4] = {0, 0, 0, 0};
  std::ifstream(path, std::ios::binary).read(magic, 4);
  const bool tiff = (magic[0] == 'I' && magic[1] == 'I') || (magic[0] == 'M' && magic[1] == 'M');
  NEPHRO_CHECK(tiff, "slide '", path, "': unsupported or corrupt slide (neither OpenSlide, TIFF nor PNG/JPEG)");
  return std::make_unique<TiffReader>(path);
}

}  // namespace

std::unique_ptr<SlideReader> open_slide(const std::string& path) {
  std::error_code ec;
  NEPHRO_CHECK(fs::is_regular_file(path, ec), "slide '", path, "': no such file");
  std::unique_ptr<SlideReader> reader = open_by_content(path);
  // A header can declare any size; the runner's per-slide buffers (thumbnail, tissue
  // and tile grids) scale with level 0, so absurd sizes are refused here.
  for (const SlideLevel& l : reader->info().levels)
    NEPHRO_CHECK(l.width > 0 && l.height > 0 && l.width <= kMaxSlideSide && l.height <= kMaxSlideSide, "slide '", path,
                 "' declares a ", l.width, " x ", l.height, " level, beyond the limit of ", kMaxSlideSide,
                 " pixels per side");
  return reader;
}

cv::Mat read_resampled(SlideReader& reader, const cv::Rect2d& rect_l0, cv::Size out_size) {
  const SlideInfo& info = reader.info();
  NEPHRO_CHECK(out_size.width > 0 && out_size.height > 0 && rect_l0.width > 0 && rect_l0.height > 0,
               "slide '", info.path, "': empty region requested");
  const double want = std::min(rect_l0.width / out_size.width, rect_l0.height / out_size.height);
  int level = 0;
  for (size_t i = 0; i < info.levels.size(); ++i)
    if (info.levels[i].downsample <= want * (1.0 + 1e-6)) level = static_cast<int>(i);
  const double ds = info.levels[level].downsample;
  const double x0 = rect_l0.x / ds, y0 = rect_l0.y / ds;
  const double x1 = (rect_l0.x + rect_l0.width) / ds, y1 = (rect_l0.y + rect_l0.height) / ds;
  const int ix0 = static_cast<int>(std::floor(x0 + 1e-6)), iy0 = static_cast<int>(std::floor(y0 + 1e-6));
  const int ix1 = static_cast<int>(std::ceil(x1 - 1e-6)), iy1 = static_cast<int>(std::ceil(y1 - 1e-6));
  cv::Mat region = reader.read_region(level, cv::Rect(ix0, iy0, ix1 - ix0, iy1 - iy0));
  if (region.size() == out_size) return region;
  cv::Mat out;
  const bool down = region.cols > out_size.width;
  cv::resize(region, out, out_size, 0, 0, down ? cv::INTER_AREA : cv::INTER_LINEAR);
  return out;
}

}  // namespace nephroseg::slide
