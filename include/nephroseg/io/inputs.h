// nephroseg/io/inputs.h: the one rule for "a file or a folder" inputs and for pairing
// two such inputs by file stem (target + ground truth, mask + image, image + mask).
//
//   auto items = io::list_inputs("targets/", "--target");         // sorted by file name
//   auto pairs = io::pair_by_stem(items, "truth/", "--ground-truth", io::Partner::kOptional);
//   for (const auto& p : pairs) use(p.name, p.path, p.partner);    // partner "" if none
//
// Rules:
//   * a file is one item; a folder gives its image files (io::is_image_file), not
//     recursive, sorted by file name; an empty folder or a missing path is an error
//     naming `what`;
//   * an item's name is its file stem (io::file_stem); two items with one stem are an
//     error (their outputs would collide);
//   * a partner path that is a folder is searched by stem; a partner that is a file
//     pairs only with a single item.
#pragma once

#include <string>
#include <vector>

namespace nephroseg::io {

struct InputItem {
  std::string name;     ///< file stem, used for output names
  std::string path;
  std::string partner;  ///< pair_by_stem(): the matched file, "" when none
};

/// The items named by `path` (a file or a folder). `what` names the option in errors.
std::vector<InputItem> list_inputs(const std::string& path, const std::string& what);

enum class Partner { kRequired, kOptional };

/// Sets each item's partner from `partner_path` (a file or a folder; "" = none).
/// kRequired: an item without a partner is an error listing up to five of them.
std::vector<InputItem> pair_by_stem(std::vector<InputItem> items, const std::string& partner_path,
                                    const std::string& what, Partner mode);

}  // namespace nephroseg::io
