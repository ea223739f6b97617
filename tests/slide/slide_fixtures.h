// tests/slide/slide_fixtures.h: synthetic slides written with libtiff directly (not with
// the code under test), and a reader for the label pyramid the runner writes.
#pragma once

#include <tiffio.h>

#include <opencv2/core/mat.hpp>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace nephroseg::test {

struct FixtureTiff {
  std::vector<cv::Mat> levels;  ///< level 0 first; 8U or 16U, 1..N channels (RGB order)
  bool ome = true;              ///< OME-XML with PhysicalSize (else resolution tags in cm)
  bool subifds = true;          ///< pyramid as SubIFDs (else further pages)
  bool tiled = true;            ///< 256 px tiles (else strips of 64 rows)
  double mpp = 0.5;             ///< 0 = no pixel size at all
  std::vector<std::string> channel_names;
};

inline void write_fixture_tiff(const std::string& path, const FixtureTiff& f) {
  TIFF* tif = TIFFOpen(path.c_str(), "w");
  if (!tif) throw std::runtime_error("fixture: cannot create " + path);
  const int n = static_cast<int>(f.levels.size());
  for (int k = 0; k < n; ++k) {
    const cv::Mat& m = f.levels[k];
    const int spp = m.channels(), bps = m.depth() == CV_16U ? 16 : 8;
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(m.cols));
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(m.rows));
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, spp);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, bps);
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, spp == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
    TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
    if (k > 0) TIFFSetField(tif, TIFFTAG_SUBFILETYPE, FILETYPE_REDUCEDIMAGE);
    if (k == 0 && f.mpp > 0 && f.ome) {
      std::string xml = "<?xml version=\"1.0\"?><OME xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\">"
                        "<Image ID=\"Image:0\"><Pixels ID=\"Pixels:0\" DimensionOrder=\"XYZCT\" Type=\"uint" +
                        std::to_string(bps) + "\" SizeX=\"" + std::to_string(m.cols) + "\" SizeY=\"" +
                        std::to_string(m.rows) + "\" SizeZ=\"1\" SizeC=\"" + std::to_string(spp) +
                        "\" SizeT=\"1\" PhysicalSizeX=\"" + std::to_string(f.mpp * 1000) +
                        "\" PhysicalSizeXUnit=\"nm\" PhysicalSizeY=\"" + std::to_string(f.mpp * 1000) +
                        "\" PhysicalSizeYUnit=\"nm\">";
      for (size_t c = 0; c < f.channel_names.size(); ++c)
        xml += "<Channel ID=\"Channel:0:" + std::to_string(c) + "\" Name=\"" + f.channel_names[c] + "\"/>";
      xml += "</Pixels></Image></OME>";
      TIFFSetField(tif, TIFFTAG_IMAGEDESCRIPTION, xml.c_str());
    } else if (f.mpp > 0) {
      const double ds = static_cast<double>(f.levels[0].cols) / m.cols;
      const float res = static_cast<float>(1e4 / (f.mpp * ds));
      TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
      TIFFSetField(tif, TIFFTAG_XRESOLUTION, res);
      TIFFSetField(tif, TIFFTAG_YRESOLUTION, res);
    }
    if (k == 0 && f.subifds && n > 1) {
      std::vector<toff_t> offsets(n - 1, 0);
      TIFFSetField(tif, TIFFTAG_SUBIFD, static_cast<uint16_t>(n - 1), offsets.data());
    }
    const size_t pixel = static_cast<size_t>(spp) * bps / 8;
    if (f.tiled) {
      const int t = 256;
      TIFFSetField(tif, TIFFTAG_TILEWIDTH, t);
      TIFFSetField(tif, TIFFTAG_TILELENGTH, t);
      std::vector<uint8_t> buf(static_cast<size_t>(t) * t * pixel);
      for (int y = 0; y < m.rows; y += t)
        for (int x = 0; x < m.cols; x += t) {
          std::fill(buf.begin(), buf.end(), 0);
          for (int j = 0; j < t && y + j < m.rows; ++j)
            std::memcpy(buf.data() + j * t * pixel, m.ptr<uint8_t>(y + j) + x * pixel,
                        std::min(t, m.cols - x) * pixel);
          TIFFWriteEncodedTile(tif, TIFFComputeTile(tif, x, y, 0, 0), buf.data(), buf.size());
        }
    } else {
      TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 64);
      for (int y = 0; y < m.rows; ++y) TIFFWriteScanline(tif, const_cast<uint8_t*>(m.ptr<uint8_t>(y)), y, 0);
    }
    TIFFWriteDirectory(tif);
  }
  TIFFClose(tif);
}

/// Level `level` of a uint32 label TIFF written by the runner (SubIFD levels).
inline cv::Mat read_label_level(const std::string& path, int level, std::string* description = nullptr,
                                int* num_levels = nullptr) {
  TIFF* tif = TIFFOpen(path.c_str(), "r");
  if (!tif) return {};
  char* desc = nullptr;
  if (description && TIFFGetField(tif, TIFFTAG_IMAGEDESCRIPTION, &desc)) *description = desc;
  uint16_t nsub = 0;
  toff_t* offs = nullptr;
  std::vector<toff_t> subs;
  if (TIFFGetField(tif, TIFFTAG_SUBIFD, &nsub, &offs)) subs.assign(offs, offs + nsub);
  if (num_levels) *num_levels = 1 + static_cast<int>(subs.size());
  if (level > 0) TIFFSetSubDirectory(tif, subs.at(level - 1));
  uint32_t w = 0, h = 0, tw = 0, th = 0;
  uint16_t bps = 0;
  TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
  TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
  TIFFGetField(tif, TIFFTAG_BITSPERSAMPLE, &bps);
  TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
  TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
  cv::Mat out;
  if (bps == 32 && tw > 0) {
    out = cv::Mat::zeros(h, w, CV_32S);
    std::vector<uint32_t> buf(static_cast<size_t>(tw) * th);
    for (uint32_t y = 0; y < h; y += th)
      for (uint32_t x = 0; x < w; x += tw) {
        TIFFReadEncodedTile(tif, TIFFComputeTile(tif, x, y, 0, 0), buf.data(), buf.size() * 4);
        for (uint32_t j = 0; j < th && y + j < h; ++j)
          for (uint32_t i = 0; i < tw && x + i < w; ++i) out.at<int>(y + j, x + i) = static_cast<int>(buf[j * tw + i]);
      }
  }
  TIFFClose(tif);
  return out;
}

}  // namespace nephroseg::test
