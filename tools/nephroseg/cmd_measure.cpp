// `nephroseg measure`: GBM thickness in nanometres from membrane masks.
#include <cmath>
#include <iostream>
#include <limits>

#include "command.h"
#include "events.h"
#include "options.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/core/shard.h"
#include "nephroseg/workloads/measure.h"
#include "nephroseg/measure/reference.h"
#include "nephroseg/measure/report.h"
#include "nephroseg/measure/thickness.h"

namespace nephroseg::cli {
namespace {

struct MeasureParams {
  std::string mask, image, out, reference = measure::default_reference_id(), ref_method = "direct";
  std::string nm_per_pixel = "auto";
  double ref_low = std::numeric_limits<double>::quiet_NaN(), ref_high = std::numeric_limits<double>::quiet_NaN();
  int mask_channel = -1;
  double mask_threshold = 127;
  bool list_references = false;
  std::string shard;
  measure::ThicknessOptions thickness;
};

int run_measure(MeasureParams& p) {
  if (p.list_references) {
    for (const auto& r : measure::reference_ranges())
      std::cout << r.id << "\t" << (std::isnan(r.low_nm) ? std::string("-") : std::to_string(int(r.low_nm))) << " .. "
                << (std::isnan(r.high_nm) ? std::string("-") : std::to_string(int(r.high_nm))) << " nm\t"
                << measure::estimator_name(r.method) << "\t" << r.population << "\t" << r.source << "\n";
    return 0;
  }
  workloads::MeasureBatchOptions o;
  o.mask = p.mask;
  o.image = p.image;
  o.nm_per_pixel = p.nm_per_pixel;
  measure::parse_nm_per_pixel_option(o.nm_per_pixel);  // a bad value fails before any reading
  if (!std::isnan(p.ref_low) || !std::isnan(p.ref_high)) {
    NEPHRO_CHECK(p.ref_method == "oi" || p.ref_method == "direct", "--ref-method must be 'oi' or 'direct'");
    o.range = measure::custom_reference_range(
        p.ref_low, p.ref_high, p.ref_method == "oi" ? measure::Estimator::kOrthogonalIntercept : measure::Estimator::kDirect);
  } else {
    o.range = measure::find_reference_range(p.reference);
  }
  o.thickness = p.thickness;
  o.mask_read.channel = p.mask_channel;
  o.mask_read.threshold = p.mask_threshold;
  o.shard = parse_shard(p.shard);
  o.out_dir = p.out;
  const workloads::MeasureBatchResult r = workloads::run_measure_batch(o, print_event);
  if (!o.shard.whole()) log_info("measure: shard ", o.shard.text(), ": ", r.names.size(), " image(s)");
  log_info("wrote ", r.files_written, " files to ", p.out);
  return 0;
}

Runner setup_measure(CLI::App& app) {
  auto p = std::make_shared<MeasureParams>();
  app.add_option("--mask", p->mask, "GBM mask file or folder (non-zero = membrane)")->required();
  app.add_option("--image", p->image, "image file or folder (same names) for the overlay");
  app.add_option("--nm-per-pixel", p->nm_per_pixel,
                 "calibration in nm per pixel, or 'auto': the file's own (--image if given, else --mask; DM, "
                 "OME-XML, ImageJ or TIFF resolution)")
      ->capture_default_str();
  add_out_option(app, p->out);
  app.add_option("--reference", p->reference, "reference range id (see --list-references)")->capture_default_str();
  app.add_option("--ref-low-nm", p->ref_low, "custom reference range: lower bound in nm");
  app.add_option("--ref-high-nm", p->ref_high, "custom reference range: upper bound in nm");
  app.add_option("--ref-method", p->ref_method, "custom range compares with: oi (stereological) | direct")
      ->capture_default_str();
  app.add_flag("--list-references", p->list_references, "print the reference range presets and exit");
  app.add_option("--spacing-px", p->thickness.sample_spacing_px, "OI sample spacing along the boundary (px)")
      ->capture_default_str();
  app.add_option("--tangential-factor", p->thickness.tangential_factor,
                 "exclude widths above this factor x the local median")
      ->capture_default_str();
  app.add_option("--short-factor", p->thickness.short_factor,
                 "exclude OI chords below this factor x the local median (bumps of the outline; 0 = keep all)")
      ->capture_default_str();
  app.add_option("--smoothing-sigma", p->thickness.smoothing_sigma_px, "Gaussian sigma for the sub-pixel boundary (px)")
      ->capture_default_str();
  app.add_option("--max-angle", p->thickness.max_angle_deg, "OI ray cone half-angle (degrees)")->capture_default_str();
  app.add_option("--seed", p->thickness.seed, "systematic sampling start")->capture_default_str();
  app.add_option("--mask-channel", p->mask_channel, "-1: any channel non-zero; else this channel > threshold")
      ->capture_default_str();
  app.add_option("--mask-threshold", p->mask_threshold, "threshold with --mask-channel")->capture_default_str();
  add_shard_option(app, p->shard, "masks");
  return [p] { return run_measure(*p); };
}

}  // namespace

NEPHRO_COMMAND("", "measure", "GBM thickness (nm): orthogonal intercepts and medial-axis widths", setup_measure);

}  // namespace nephroseg::cli
