// The OME-TIFF label pyramid writer.
#include "slide/label_pyramid.h"

#include <tiffio.h>

#include <algorithm>
#include <vector>

#include "nephroseg/core/atomic_file.h"
#include "nephroseg/core/error.h"

namespace nephroseg::slide {
namespace {

std::string ome_xml(const LabelPyramidSpec& s) {
  char px[64];
  std::snprintf(px, sizeof px, "%.9g", s.mpp);
  std::string name;
  for (char c : s.name) {  // XML-escape the name
    if (c == '&') name += "&amp;";
    else if (c == '<') name += "&lt;";
    else if (c == '>') name += "&gt;";
    else if (c == '"') name += "&quot;";
    else name += c;
  }
  return std::string("<?xml version=\"1.0\" encoding=\"UTF-8\"?>") +
         "<OME xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\" "
         "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
         "xsi:schemaLocation=\"http://www.openmicroscopy.org/Schemas/OME/2016-06 "
         "http://www.openmicroscopy.org/Schemas/OME/2016-06/ome.xsd\">"
         "<Image ID=\"Image:0\" Name=\"" + name + " labels\"><Pixels ID=\"Pixels:0\" DimensionOrder=\"XYZCT\" "
         "Type=\"uint32\" SizeX=\"" + std::to_string(s.width) + "\" SizeY=\"" + std::to_string(s.height) +
         "\" SizeZ=\"1\" SizeC=\"1\" SizeT=\"1\" PhysicalSizeX=\"" + px + "\" PhysicalSizeXUnit=\"\xC2\xB5m\" "
         "PhysicalSizeY=\"" + px + "\" PhysicalSizeYUnit=\"\xC2\xB5m\">"
         "<Channel ID=\"Channel:0:0\" Name=\"labels\" SamplesPerPixel=\"1\"/>"
         "<TiffData IFD=\"0\" PlaneCount=\"1\"/></Pixels></Image></OME>";
}

}  // namespace

void write_label_pyramid(const std::string& path, const LabelPyramidSpec& spec,
                         const std::function<void(int, int, int, int, uint32_t*)>& row) {
  NEPHRO_CHECK(spec.width > 0 && spec.height > 0 && spec.tile % 16 == 0, "label pyramid: bad size");
  int levels = 1;
  for (int w = spec.width, h = spec.height; std::max(w, h) > spec.tile; ++levels) {
    w = (w + 1) / 2;
    h = (h + 1) / 2;
  }
  const bool big = static_cast<double>(spec.width) * spec.height * 4.0 > 2147483648.0 * 0.9;
  write_atomically(path, [&](const std::string& tmp) {
    TIFF* tif = TIFFOpen(tmp.c_str(), big ? "w8" : "w");
    NEPHRO_CHECK(tif != nullptr, "cannot create '", path, "'");
    const int t = spec.tile;
    std::vector<uint32_t> buf(static_cast<size_t>(t) * t);
    try {
      for (int k = 0; k < levels; ++k) {
        const int f = 1 << k;
        const int w = (spec.width + f - 1) / f, h = (spec.height + f - 1) / f;
        TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(w));
        TIFFSetField(tif, TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(h));
        TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1);
        TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 32);
        TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, SAMPLEFORMAT_UINT);
        TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
        TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
        TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
        TIFFSetField(tif, TIFFTAG_TILEWIDTH, static_cast<uint32_t>(t));
        TIFFSetField(tif, TIFFTAG_TILELENGTH, static_cast<uint32_t>(t));
        TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
        TIFFSetField(tif, TIFFTAG_XRESOLUTION, static_cast<float>(1e4 / (spec.mpp * f)));
        TIFFSetField(tif, TIFFTAG_YRESOLUTION, static_cast<float>(1e4 / (spec.mpp * f)));
        if (k == 0) {
          const std::string xml = ome_xml(spec);
          TIFFSetField(tif, TIFFTAG_IMAGEDESCRIPTION, xml.c_str());
          if (levels > 1) {
            std::vector<toff_t> offsets(levels - 1, 0);
            TIFFSetField(tif, TIFFTAG_SUBIFD, static_cast<uint16_t>(levels - 1), offsets.data());
          }
        } else {
          TIFFSetField(tif, TIFFTAG_SUBFILETYPE, FILETYPE_REDUCEDIMAGE);
        }
        for (int ty = 0; ty < h; ty += t)
          for (int tx = 0; tx < w; tx += t) {
            std::fill(buf.begin(), buf.end(), 0u);
            const int cw = std::min(t, w - tx);
            for (int j = 0; j < t && ty + j < h; ++j) row((ty + j) * f, tx * f, f, cw, buf.data() + static_cast<size_t>(j) * t);
            const tmsize_t n = TIFFWriteEncodedTile(tif, TIFFComputeTile(tif, tx, ty, 0, 0), buf.data(),
                                                    static_cast<tmsize_t>(buf.size() * 4));
            NEPHRO_CHECK(n >= 0, "error while writing '", path, "' (disk full?)");
          }
        NEPHRO_CHECK(TIFFWriteDirectory(tif), "error while writing '", path, "' (disk full?)");
      }
    } catch (...) {
      TIFFClose(tif);
      throw;
    }
    TIFFClose(tif);
  });
}

}  // namespace nephroseg::slide
