// A set of phantoms on disk (see nephroseg/workloads/phantom.h).
#include "nephroseg/workloads/phantom.h"

#include <nlohmann/json.hpp>

#include <filesystem>

#include "nephroseg/core/atomic_file.h"
#include "nephroseg/core/error.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"

namespace nephroseg::workloads {

namespace fs = std::filesystem;

int write_phantom_set(const PhantomSetOptions& o, const EventSink& events) {
  NEPHRO_CHECK(o.count >= 1 && o.count <= 10000, "--count must be in [1, 10000]");
  NEPHRO_CHECK(
      !o.prefix.empty() && o.prefix.find('/') == std::string::npos && o.prefix != "." && o.prefix != "..",
      "--prefix '", o.prefix, "' must be a plain file name prefix (no folder)");
  const std::string shape = measure::phantom_shape_name(o.phantom.shape);
  std::vector<io::CsvRow> rows;
  nlohmann::json items = nlohmann::json::array();
  for (int i = 0; i < o.count; ++i) {
    measure::PhantomOptions po = o.phantom;
    po.seed = o.phantom.seed + static_cast<uint64_t>(i);
    const measure::Phantom ph = measure::generate_phantom(po);
    const std::string name = o.prefix + "_" + std::to_string(po.seed);
    io::write_png((fs::path(o.out_dir) / "images" / (name + ".png")).string(), ph.image);
    io::write_mask_png((fs::path(o.out_dir) / "masks" / (name + ".png")).string(), ph.mask);
    rows.push_back({name, std::to_string(po.seed), io::format_number(ph.true_thickness_px),
                    io::format_number(ph.nm_per_pixel), io::format_number(ph.true_thickness_nm()), shape,
                    std::to_string(ph.centre_lines.size()), std::to_string(ph.contact_points.size())});
    items.push_back({{"name", name},
                     {"seed", po.seed},
                     {"true_thickness_px", ph.true_thickness_px},
                     {"nm_per_pixel", ph.nm_per_pixel},
                     {"true_thickness_nm", ph.true_thickness_nm()},
                     {"shape", shape},
                     {"membranes", ph.centre_lines.size()},
                     {"contacts", ph.contact_points.size()}});
  }
  io::write_csv((fs::path(o.out_dir) / "truth.csv").string(),
                {"name", "seed", "true_thickness_px", "nm_per_pixel", "true_thickness_nm", "shape",
                 "membranes", "contacts"},
                rows);
  const nlohmann::json doc = {
      {"definition",
       "membrane = all points within t/2 of a smooth centre curve; the perpendicular width is t; the mask "
       "marks "
       "pixels whose centre lies inside; sections are perpendicular, so no 3-D obliquity correction applies"},
      {"phantoms", items}};
  write_file_atomically((fs::path(o.out_dir) / "truth.json").string(), doc.dump(2) + "\n");
  Event e;
  e.kind = Event::Kind::kInfo;
  e.message = detail::concat("wrote ", o.count, " phantom(s) to ", o.out_dir,
                             " (images/, masks/, truth.csv, truth.json)");
  emit(events, e);
  return o.count;
}

}  // namespace nephroseg::workloads
