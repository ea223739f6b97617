#include "nephroseg/io/ome_xml.h"

#include <pugixml.hpp>

#include <cstring>

#include "nephroseg/core/error.h"

namespace nephroseg::io {

namespace {

// The element name without its namespace prefix.
const char* local_name(const pugi::xml_node& node) {
  const char* name = node.name();
  const char* colon = std::strrchr(name, ':');
  return colon != nullptr ? colon + 1 : name;
}

// The attribute `name`, with or without a namespace prefix on the attribute itself.
std::string attribute(const pugi::xml_node& node, const char* name) {
  for (pugi::xml_attribute a = node.first_attribute(); a; a = a.next_attribute()) {
    const char* n = a.name();
    const char* colon = std::strrchr(n, ':');
    if (std::strcmp(colon != nullptr ? colon + 1 : n, name) == 0) return a.value();
  }
  return {};
}

// Depth-first, document order, without recursion (a deep document costs no stack).
pugi::xml_node first_element_named(const pugi::xml_node& root, const char* name) {
  pugi::xml_node node = root.first_child();
  while (node) {
    if (node.type() == pugi::node_element && std::strcmp(local_name(node), name) == 0) return node;
    if (node.first_child()) {
      node = node.first_child();
      continue;
    }
    while (node && !node.next_sibling() && node != root) node = node.parent();
    if (!node || node == root) break;
    node = node.next_sibling();
  }
  return {};
}

}  // namespace

std::optional<OmePixels> read_ome_pixels(const std::string& xml, const std::string& what) {
  NEPHRO_CHECK(xml.size() <= kMaxOmeXmlBytes, what, ": its OME-XML description is ", xml.size(),
               " bytes, over the limit of ", kMaxOmeXmlBytes, " bytes");
  pugi::xml_document doc;
  // Default options: no DOCTYPE content kept, no DTD entity expansion, only the five
  // predefined entities and character references are replaced.
  const pugi::xml_parse_result parsed = doc.load_buffer(xml.data(), xml.size(), pugi::parse_default, pugi::encoding_utf8);
  NEPHRO_CHECK(parsed, what, ": its OME-XML description is not well-formed XML (",
               parsed.status == pugi::status_end_element_mismatch ? "an element is not closed where it should be"
               : parsed.status == pugi::status_unrecognized_tag  ? "a malformed tag"
               : parsed.status == pugi::status_bad_attribute     ? "a malformed attribute"
                                                                 : "malformed XML",
               " at byte ", parsed.offset, ")");
  const pugi::xml_node pixels = first_element_named(doc, "Pixels");
  if (!pixels) return std::nullopt;
  OmePixels out;
  out.size_c = attribute(pixels, "SizeC");
  out.physical_size_x = attribute(pixels, "PhysicalSizeX");
  out.physical_size_y = attribute(pixels, "PhysicalSizeY");
  out.unit_x = attribute(pixels, "PhysicalSizeXUnit");
  out.unit_y = attribute(pixels, "PhysicalSizeYUnit");
  for (pugi::xml_node c = pixels.first_child(); c; c = c.next_sibling())
    if (c.type() == pugi::node_element && std::strcmp(local_name(c), "Channel") == 0)
      out.channel_names.push_back(attribute(c, "Name"));
  return out;
}

}  // namespace nephroseg::io
