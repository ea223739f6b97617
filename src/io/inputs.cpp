#include "nephroseg/io/inputs.h"

#include <filesystem>
#include <map>

#include "nephroseg/core/error.h"
#include "nephroseg/io/image.h"

namespace fs = std::filesystem;

namespace nephroseg::io {

std::vector<InputItem> list_inputs(const std::string& path, const std::string& what) {
  NEPHRO_CHECK(!path.empty(), what, " is required");
  std::error_code ec;
  std::vector<InputItem> items;
  if (fs::is_directory(path, ec)) {
    for (const auto& f : list_image_files(path)) items.push_back({file_stem(f), f, ""});
    NEPHRO_CHECK(!items.empty(), what, ": folder '", path, "' holds no image files (.png .jpg .jpeg .tif .tiff)");
  } else {
    NEPHRO_CHECK(fs::exists(path, ec), what, ": '", path, "' does not exist");
    items.push_back({file_stem(path), path, ""});
  }
  std::map<std::string, std::string> seen;
  for (const auto& it : items) {
    auto [pos, fresh] = seen.emplace(it.name, it.path);
    NEPHRO_CHECK(fresh, what, ": '", pos->second, "' and '", it.path, "' share the name '", it.name,
                 "' (their outputs would collide)");
  }
  return items;
}

std::vector<InputItem> pair_by_stem(std::vector<InputItem> items, const std::string& partner_path,
                                    const std::string& what, Partner mode) {
  std::error_code ec;
  if (partner_path.empty()) {
    NEPHRO_CHECK(mode == Partner::kOptional, what, " is required");
    return items;
  }
  if (fs::is_directory(partner_path, ec)) {
    std::map<std::string, std::string> by_stem;
    for (const auto& f : list_image_files(partner_path)) {
      auto [pos, fresh] = by_stem.emplace(file_stem(f), f);
      NEPHRO_CHECK(fresh, what, ": '", pos->second, "' and '", f, "' share the name '", pos->first, "'");
    }
    std::vector<std::string> missing;
    for (auto& it : items) {
      auto f = by_stem.find(it.name);
      if (f != by_stem.end()) it.partner = f->second;
      else missing.push_back(it.name);
    }
    if (mode == Partner::kRequired && !missing.empty()) {
      std::string list;
      for (size_t i = 0; i < missing.size() && i < 5; ++i) list += (i ? ", " : "") + missing[i];
      if (missing.size() > 5) list += ", ...";
      NEPHRO_CHECK(false, what, ": ", missing.size(), " of ", items.size(), " inputs have no file of the same name in '",
                   partner_path, "' (", list, ")");
    }
    return items;
  }
  NEPHRO_CHECK(fs::exists(partner_path, ec), what, ": '", partner_path, "' does not exist");
  NEPHRO_CHECK(items.size() == 1, what, ": '", partner_path, "' is a file but ", items.size(),
               " inputs were given; pass a folder of files named like the inputs");
  items[0].partner = partner_path;
  return items;
}

}  // namespace nephroseg::io
