// `nephroseg phantom`: synthetic TEM-like GBM images with masks of known thickness.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "command.h"
#include "options.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/core/atomic_file.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/measure/phantom.h"

namespace fs = std::filesystem;

namespace nephroseg::cli {
namespace {

struct PhantomParams {
  std::string out, shape = "mixed", prefix = "phantom";
  int count = 1;
  bool no_texture = false;
  measure::PhantomOptions options;
};

int run_phantom(PhantomParams& p) {
  NEPHRO_CHECK(p.count >= 1 && p.count <= 10000, "--count must be in [1, 10000]");
  p.options.shape = measure::parse_phantom_shape(p.shape);
  p.options.texture = !p.no_texture;
  std::vector<io::CsvRow> rows;
  nlohmann::json items = nlohmann::json::array();
  for (int i = 0; i < p.count; ++i) {
    measure::PhantomOptions o = p.options;
    o.seed = p.options.seed + static_cast<uint64_t>(i);
    const measure::Phantom ph = measure::generate_phantom(o);
    const std::string name = p.prefix + "_" + std::to_string(o.seed);
    io::write_png((fs::path(p.out) / "images" / (name + ".png")).string(), ph.image);
    io::write_mask_png((fs::path(p.out) / "masks" / (name + ".png")).string(), ph.mask);
    rows.push_back({name, std::to_string(o.seed), io::format_number(ph.true_thickness_px),
                    io::format_number(ph.nm_per_pixel), io::format_number(ph.true_thickness_nm()), p.shape,
                    std::to_string(ph.centre_lines.size()), std::to_string(ph.contact_points.size())});
    items.push_back({{"name", name}, {"seed", o.seed}, {"true_thickness_px", ph.true_thickness_px},
                     {"nm_per_pixel", ph.nm_per_pixel}, {"true_thickness_nm", ph.true_thickness_nm()},
                     {"shape", p.shape}, {"membranes", ph.centre_lines.size()},
                     {"contacts", ph.contact_points.size()}});
  }
  io::write_csv((fs::path(p.out) / "truth.csv").string(),
                {"name", "seed", "true_thickness_px", "nm_per_pixel", "true_thickness_nm", "shape", "membranes",
                 "contacts"},
                rows);
  nlohmann::json doc = {
      {"definition",
       "membrane = all points within t/2 of a smooth centre curve; the perpendicular width is t; the mask marks "
       "pixels whose centre lies inside; sections are perpendicular, so no 3-D obliquity correction applies"},
      {"phantoms", items}};
  write_file_atomically((fs::path(p.out) / "truth.json").string(), doc.dump(2) + "\n");
  log_info("wrote ", p.count, " phantom(s) to ", p.out, " (images/, masks/, truth.csv, truth.json)");
  return 0;
}

Runner setup_phantom(CLI::App& app) {
  auto p = std::make_shared<PhantomParams>();
  add_out_option(app, p->out, "output folder (images/, masks/, truth.csv, truth.json)");
  app.add_option("--count", p->count, "number of phantoms (seeds seed .. seed+count-1)")->capture_default_str();
  app.add_option("--seed", p->options.seed, "first seed")->capture_default_str();
  app.add_option("--size", p->options.size, "image width = height (px)")->capture_default_str();
  app.add_option("--thickness-px", p->options.thickness_px, "true membrane thickness (px)")->capture_default_str();
  app.add_option("--nm-per-pixel", p->options.nm_per_pixel, "calibration written to truth files")->capture_default_str();
  app.add_option("--shape", p->shape, "mixed | straight | arc | wave | loop")->capture_default_str();
  app.add_option("--membranes", p->options.num_membranes, "membranes per image")->capture_default_str();
  app.add_option("--min-radius-px", p->options.min_radius_px, "smallest curvature radius (0 = 4 x thickness)")
      ->capture_default_str();
  app.add_option("--orientation", p->options.orientation_deg, "direction of straight/wave bands in degrees (<0 random)")
      ->capture_default_str();
  app.add_flag("--touching", p->options.touching, "add a band touching another one");
  app.add_flag("--branching", p->options.branching, "add a branching band");
  app.add_flag("--no-texture", p->no_texture, "plain background, no foot processes");
  app.add_option("--blur", p->options.blur_sigma_px, "image blur sigma (px)")->capture_default_str();
  app.add_option("--noise", p->options.noise_sigma, "image noise sigma (grey levels)")->capture_default_str();
  app.add_option("--prefix", p->prefix, "file name prefix")->capture_default_str();
  return [p] { return run_phantom(*p); };
}

}  // namespace

NEPHRO_COMMAND("", "phantom", "synthetic TEM-like GBM images with masks of known thickness", setup_phantom);

}  // namespace nephroseg::cli
