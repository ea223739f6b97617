// nephroseg/io/ome_xml.h: the one OME-XML reader (the OME-TIFF ImageDescription), used
// by the calibration reader (io/calibration.h) and the slide reader (slide/reader.h).
//
//   auto pixels = nephroseg::io::read_ome_pixels(description, "slide 'a.ome.tif'");
//   if (pixels) use(pixels->physical_size_x, pixels->unit_x, pixels->channel_names);
//
// Parsed with pugixml (Debian's libpugixml 1.13): its parser does not recurse per
// nesting level and does not expand DTD entities, so a hostile description costs memory
// linear in its size and no stack. The text is bounded first (kMaxOmeXmlBytes).
// Element names match with or without a namespace prefix ("Pixels", "ome:Pixels").
//
// Thread safety: pure function.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace nephroseg::io {

/// Largest OME-XML description read (64 MiB): a plate of many images writes a few MiB.
inline constexpr size_t kMaxOmeXmlBytes = size_t{64} << 20;

/// The first image's <Pixels> element of an OME-XML document.
struct OmePixels {
  std::string size_c;           ///< the SizeC attribute as written ("" when absent)
  std::string physical_size_x;  ///< PhysicalSizeX as written ("" when absent)
  std::string physical_size_y;
  std::string unit_x;           ///< PhysicalSizeXUnit ("" when absent: the schema's µm)
  std::string unit_y;
  std::vector<std::string> channel_names;  ///< Name of each <Channel> child, in order
};

/// The first <Pixels> element of `xml`; nullopt when the document has none. Throws
/// nephroseg::Error naming `what` when the text is longer than kMaxOmeXmlBytes or is
/// not well-formed XML (with the parser's position), never the parser's own text.
std::optional<OmePixels> read_ome_pixels(const std::string& xml, const std::string& what);

}  // namespace nephroseg::io
