// `nephroseg slide`: find, stitch and export glomeruli of whole slides. The work is
// workloads::run_slide_batch (nephroseg/workloads/slide.h); this command binds its
// options and draws the tile progress.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "command.h"
#include "events.h"
#include "nephroseg/core/error.h"
#include "nephroseg/workloads/slide.h"
#include "options.h"

namespace nephroseg::cli {
namespace {

struct SlideParams {
  workloads::SlideBatchOptions batch;
  std::string roi, channels, tissue = "auto", object_type = "annotation", shard, labels_at = "level0";
};

std::vector<int> parse_ints(const std::string& text, const std::string& what) {
  std::vector<int> v;
  for (float x : parse_numbers(text, what)) {
    NEPHRO_CHECK(std::fabs(x) < 2.0e9f && x == std::floor(x), what, ": '", text,
                 "' is not a comma-separated list of integers");
    v.push_back(static_cast<int>(x));
  }
  return v;
}

// Tiles done / total with ETA: redrawn on a terminal, one line per 5 % otherwise.
class TileProgress {
 public:
  void operator()(const workloads::Event& e) {
    if (e.kind != workloads::Event::Kind::kProgress) return print_event(e);
    if (global_options().quiet) return;
    const int done = static_cast<int>(e.index), total = static_cast<int>(e.total);
    const auto now = std::chrono::steady_clock::now();
    if (e.item != name_ || done == 1) {  // a new slide: restart the clock and the 5 % steps
      start_ = now;
      first_ = done;
      last_ = -5;
      name_ = e.item;
    }
    const int pct = total ? 100 * done / total : 100;
    const double el = std::chrono::duration<double>(now - start_).count();
    const double eta = done > first_ ? el / (done - first_) * (total - done) : 0.0;
    char line[256];
    if (stderr_is_tty()) {
      const int width = 30, filled = total ? width * done / total : width;
      std::snprintf(line, sizeof line, "\r\033[K%s [%s%s] %d/%d tiles  eta %.0f s", name_.c_str(),
                    std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(), done, total,
                    eta);
      std::cerr << line << (done == total ? "\n" : "") << std::flush;
    } else if (pct / 5 != last_ / 5 || done == total) {
      std::snprintf(line, sizeof line, "%s: %d/%d tiles (%d %%), eta %.0f s", name_.c_str(), done, total, pct,
                    eta);
      std::cerr << line << std::endl;
      last_ = pct;
    }
  }

 private:
  std::string name_;
  int last_ = -5, first_ = 0;
  std::chrono::steady_clock::time_point start_;
};

int run_slide_cmd(SlideParams& p) {
  slide::SlideRunOptions& run = p.batch.run;
  run.tissue.mode = slide::tissue_mode_names().parse(p.tissue, "--tissue");
  run.object_type = slide::object_type_names().parse(p.object_type, "--object-type");
  NEPHRO_CHECK(p.labels_at == "level0" || p.labels_at == "work",
               "--labels-at must be 'level0' or 'work' (got '", p.labels_at, "')");
  run.labels_at_level0 = p.labels_at == "level0";
  if (!p.roi.empty()) {
    const auto v = parse_ints(p.roi, "--roi");
    NEPHRO_CHECK(v.size() == 4, "--roi: expected X,Y,W,H in level-0 pixels, got '", p.roi, "'");
    run.has_roi = true;
    run.roi = cv::Rect(v[0], v[1], v[2], v[3]);
  }
  if (!p.channels.empty()) run.channels.channels = parse_ints(p.channels, "--channels");
  p.batch.segmenter.precision = global_options().precision;
  p.batch.shard = parse_shard(p.shard);
  TileProgress progress;
  workloads::run_slide_batch(p.batch, [&](const workloads::Event& e) { progress(e); });
  return 0;
}

Runner setup_slide(CLI::App& app) {
  auto p = std::make_shared<SlideParams>();
  workloads::SlideBatchOptions& b = p->batch;
  app.add_option("--slide", b.slide,
                 "slide file (SVS, NDPI, MRXS, OME-TIFF, TIFF, PNG, ...) or folder of slides")
      ->required();
  add_out_option(app, b.out_dir, "output folder (one subfolder per slide for a folder)");
  app.add_option(
         "--segmenter", b.segmenter.name,
         "classical (weight-free) | glomsam (rough-mask box) | sam | medsam (boxes from the classical "
         "detector)")
      ->capture_default_str();
  app.add_option("--checkpoint", b.segmenter.checkpoint, "model checkpoint (model segmenters)");
  app.add_option("--model-config", b.segmenter.config,
                 "glomsam: auto | official | tiny | JSON; sam/medsam: vit_b | vit_l | vit_h | medsam | JSON");
  app.add_option("--mpp", b.run.mpp,
                 "work resolution in µm/px (0 = level 0); the level-0 size when the file has none")
      ->capture_default_str();
  app.add_option("--magnification", b.run.magnification, "work at this magnification (e.g. 20)");
  app.add_option("--level", b.run.level, "work at this pyramid level's resolution")->capture_default_str();
  app.add_option("--tile", b.run.tile,
                 "tile core side in work pixels (model segmenters: default = model input - 2 x halo)")
      ->capture_default_str()
      ->each([p](const std::string&) { p->batch.tile_from_model = false; });
  app.add_option("--halo", b.run.halo, "context around each tile core in work pixels")->capture_default_str();
  app.add_option("--tissue", p->tissue, "auto (Otsu on the thumbnail) or none")->capture_default_str();
  app.add_option("--roi", p->roi, "X,Y,W,H in level-0 pixels");
  app.add_option("--channels", p->channels,
                 "source channel for R,G,B (-1 = black), e.g. 1,0,-1; default: the io::to_rgb8 rule");
  app.add_option("--object-type", p->object_type, "GeoJSON objectType: annotation or detection")
      ->capture_default_str();
  app.add_option("--labels-at", p->labels_at,
                 "labels.ome.tif at level0 (lines up with the slide) or at the work resolution (smaller)")
      ->capture_default_str();
  app.add_option("--min-area", b.run.filter.min_area_um2, "smallest object (µm²)")->capture_default_str();
  app.add_option("--max-area", b.run.filter.max_area_um2, "largest object (µm²)")->capture_default_str();
  add_shard_option(app, p->shard, "slides of a folder");
  return [p] { return run_slide_cmd(*p); };
}

}  // namespace

NEPHRO_COMMAND("", "slide",
               "whole slides: tissue, tiles, glomeruli, stitching; GeoJSON, TSV, OME-TIFF labels",
               setup_slide);

}  // namespace nephroseg::cli
