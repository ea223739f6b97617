// serve/web_assets.h (internal): the workbench's page and its assets (web/ and
// Debian's Leaflet), embedded at build time by cmake/EmbedWeb.cmake.
#pragma once

#include <cstddef>
#include <string>

namespace nephroseg::serve {

struct WebAsset {
  const char* path;  ///< "index.html", "app/app.js", "app/leaflet/leaflet.js", ...
  const unsigned char* data;
  size_t size;
  const char* content_type;
};

/// The asset at `path` (no leading slash), nullptr when there is none.
const WebAsset* find_web_asset(const std::string& path);

}  // namespace nephroseg::serve
