// slide/label_pyramid.h (internal): a uint32 label image written as a tiled OME-TIFF
// pyramid, tile by tile, from a row callback (so the image is never held whole).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace nephroseg::slide {

struct LabelPyramidSpec {
  int width = 0, height = 0;  ///< level 0, pixels
  double mpp = 0;             ///< µm per level-0 pixel (PhysicalSizeX/Y)
  int tile = 256;             ///< TIFF tile side (multiple of 16)
  std::string name;           ///< OME Image Name
};

/// row(y, x0, step, count, out): out[k] = label of level-0 pixel (x0 + k*step, y).
/// Level k holds the level-0 pixel (x * 2^k, y * 2^k) (nearest); levels are added
/// while the previous one is larger than one tile; they are SubIFDs of the first
/// IFD (the OME-TIFF pyramid layout). Deflate; BigTIFF when level 0 exceeds 2 GiB
/// uncompressed. Written atomically.
void write_label_pyramid(const std::string& path, const LabelPyramidSpec& spec,
                         const std::function<void(int y, int x0, int step, int count, uint32_t* out)>& row);

}  // namespace nephroseg::slide
