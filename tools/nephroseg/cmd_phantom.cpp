// `nephroseg phantom`: synthetic TEM-like GBM images with masks of known thickness
// (workloads::write_phantom_set, nephroseg/workloads/phantom.h).
#include "command.h"
#include "events.h"
#include "options.h"
#include "nephroseg/workloads/phantom.h"

namespace nephroseg::cli {
namespace {

struct PhantomParams {
  workloads::PhantomSetOptions set;
  std::string shape = "mixed";
  bool no_texture = false;
};

int run_phantom(PhantomParams& p) {
  p.set.phantom.shape = measure::parse_phantom_shape(p.shape);
  p.set.phantom.texture = !p.no_texture;
  workloads::write_phantom_set(p.set, print_event);
  return 0;
}

Runner setup_phantom(CLI::App& app) {
  auto p = std::make_shared<PhantomParams>();
  add_out_option(app, p->set.out_dir, "output folder (images/, masks/, truth.csv, truth.json)");
  app.add_option("--count", p->set.count, "number of phantoms (seeds seed .. seed+count-1)")->capture_default_str();
  app.add_option("--seed", p->set.phantom.seed, "first seed")->capture_default_str();
  app.add_option("--size", p->set.phantom.size, "image width = height (px)")->capture_default_str();
  app.add_option("--thickness-px", p->set.phantom.thickness_px, "true membrane thickness (px)")->capture_default_str();
  app.add_option("--nm-per-pixel", p->set.phantom.nm_per_pixel, "calibration written to truth files")->capture_default_str();
  app.add_option("--shape", p->shape, "mixed | straight | arc | wave | loop")->capture_default_str();
  app.add_option("--membranes", p->set.phantom.num_membranes, "membranes per image")->capture_default_str();
  app.add_option("--min-radius-px", p->set.phantom.min_radius_px, "smallest curvature radius (0 = 4 x thickness)")
      ->capture_default_str();
  app.add_option("--orientation", p->set.phantom.orientation_deg, "direction of straight/wave bands in degrees (<0 random)")
      ->capture_default_str();
  app.add_flag("--touching", p->set.phantom.touching, "add a band touching another one");
  app.add_flag("--branching", p->set.phantom.branching, "add a branching band");
  app.add_flag("--no-texture", p->no_texture, "plain background, no foot processes");
  app.add_option("--blur", p->set.phantom.blur_sigma_px, "image blur sigma (px)")->capture_default_str();
  app.add_option("--noise", p->set.phantom.noise_sigma, "image noise sigma (grey levels)")->capture_default_str();
  app.add_option("--prefix", p->set.prefix, "file name prefix")->capture_default_str();
  return [p] { return run_phantom(*p); };
}

}  // namespace

NEPHRO_COMMAND("", "phantom", "synthetic TEM-like GBM images with masks of known thickness", setup_phantom);

}  // namespace nephroseg::cli
