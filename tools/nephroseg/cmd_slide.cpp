// `nephroseg slide`: find, stitch and export glomeruli of whole slides.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "command.h"
#include "options.h"
#include "nephroseg/core/batch_record.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/shard.h"
#include "nephroseg/core/log.h"
#include "nephroseg/io/image.h"
#include "nephroseg/slide/model_segmenter.h"
#include "nephroseg/slide/run.h"

namespace fs = std::filesystem;

namespace nephroseg::cli {
namespace {

struct SlideParams {
  std::string slide, out, segmenter = "classical", checkpoint, model_config, roi, channels, tissue = "auto",
                          object_type = "annotation", shard, labels_at = "level0";
  slide::SlideRunOptions options;
  bool tile_given = false;
};

std::vector<int> parse_ints(const std::string& text, const std::string& what) {
  std::vector<int> v;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ',')) {
    try {
      size_t used = 0;
      v.push_back(std::stoi(part, &used));
      NEPHRO_CHECK(used == part.size(), "");
    } catch (...) {
      NEPHRO_FAIL(what, ": '", text, "' is not a comma-separated list of integers");
    }
  }
  return v;
}

// Tiles done / total with ETA: redrawn on a terminal, one line per 5 % otherwise.
class TileProgress {
 public:
  explicit TileProgress(std::string name) : name_(std::move(name)), tty_(stderr_is_tty()) {}
  void operator()(int done, int total) {
    if (global_options().quiet) return;
    const auto now = std::chrono::steady_clock::now();
    if (done == 1 || first_ == 0) {
      start_ = now;
      first_ = done;
    }
    const int pct = total ? 100 * done / total : 100;
    const double el = std::chrono::duration<double>(now - start_).count();
    const double eta = done > first_ ? el / (done - first_) * (total - done) : 0.0;
    char line[256];
    if (tty_) {
      const int width = 30, filled = total ? width * done / total : width;
      std::snprintf(line, sizeof line, "\r\033[K%s [%s%s] %d/%d tiles  eta %.0f s", name_.c_str(),
                    std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(), done, total, eta);
      std::cerr << line << (done == total ? "\n" : "") << std::flush;
    } else if (pct / 5 != last_ / 5 || done == total) {
      std::snprintf(line, sizeof line, "%s: %d/%d tiles (%d %%), eta %.0f s", name_.c_str(), done, total, pct, eta);
      std::cerr << line << std::endl;
      last_ = pct;
    }
  }

 private:
  std::string name_;
  bool tty_;
  int last_ = -5, first_ = 0;
  std::chrono::steady_clock::time_point start_;
};

int run_slide_cmd(SlideParams& p) {
  slide::SlideRunOptions opt = p.options;
  opt.tissue.mode = slide::tissue_mode_names().parse(p.tissue, "--tissue");
  opt.object_type = slide::object_type_names().parse(p.object_type, "--object-type");
  NEPHRO_CHECK(p.labels_at == "level0" || p.labels_at == "work", "--labels-at must be 'level0' or 'work' (got '",
               p.labels_at, "')");
  opt.labels_at_level0 = p.labels_at == "level0";
  if (!p.roi.empty()) {
    const auto v = parse_ints(p.roi, "--roi");
    NEPHRO_CHECK(v.size() == 4, "--roi: expected X,Y,W,H in level-0 pixels, got '", p.roi, "'");
    opt.has_roi = true;
    opt.roi = cv::Rect(v[0], v[1], v[2], v[3]);
  }
  if (!p.channels.empty()) opt.channels.channels = parse_ints(p.channels, "--channels");
  std::vector<std::string> slides;
  std::error_code ec;
  if (fs::is_directory(p.slide, ec)) {
    for (const auto& e : fs::directory_iterator(p.slide))
      if (e.is_regular_file() && slide::is_slide_file(e.path().string())) slides.push_back(e.path().string());
    std::sort(slides.begin(), slides.end());
    NEPHRO_CHECK(!slides.empty(), "--slide: no slide files in folder '", p.slide, "'");
  } else {
    slides.push_back(p.slide);
  }
  // A folder (or a shard) keeps a batch record for `nephroseg merge`; a rerun resumes
  // each slide from its finished tiles.
  const Shard shard = parse_shard(p.shard);
  NEPHRO_CHECK(shard.whole() || fs::is_directory(p.slide), "--shard splits a folder of slides; '", p.slide,
               "' is one slide");
  bool owns_any = false;
  for (size_t i = 0; i < slides.size(); ++i) owns_any = owns_any || shard.owns(i);
  // The segmenter is loaded once for every slide (before anything is written); a model
  // sees core + halo, so by default its input side is core + 2 x halo.
  slide::SegmenterSpec spec;
  spec.name = p.segmenter;
  spec.checkpoint = p.checkpoint;
  spec.config = p.model_config;
  spec.precision = global_options().precision;
  std::unique_ptr<slide::TileSegmenter> seg;
  if (owns_any) seg = slide::make_segmenter(spec);
  const int side = seg ? seg->input_side() : 0;
  if (side > 0 && !p.tile_given) {
    NEPHRO_CHECK(side > 2 * opt.halo, "--halo ", opt.halo, " leaves no tile core inside the model's ", side,
                 " px input");
    opt.tile = side - 2 * opt.halo;
  }
  const bool batch = slides.size() > 1 || !shard.whole();
  BatchRecord record("slide", shard, slides.size(),
                     {{"slide", p.slide}, {"segmenter", p.segmenter}, {"checkpoint", p.checkpoint},
                      {"model_config", p.model_config}, {"mpp", opt.mpp}, {"magnification", opt.magnification},
                      {"level", opt.level}, {"tile", opt.tile}, {"halo", opt.halo}, {"tissue", p.tissue},
                      {"roi", p.roi}, {"channels", p.channels},
                      {"precision", precision_names().name(spec.precision)}});
  if (batch) {
    fs::create_directories(p.out);
    record.write(p.out, /*complete=*/false);
  }
  for (size_t i = 0; i < slides.size(); ++i) {
    if (!shard.owns(i)) continue;
    const std::string& path = slides[i];
    const std::string out = slides.size() == 1 ? p.out : (fs::path(p.out) / io::file_stem(path)).string();
    TileProgress progress(io::file_stem(path));
    opt.progress = [&](int d, int t) { progress(d, t); };
    const auto r = slide::run_slide(path, out, *seg, opt);
    log_info(io::file_stem(path), ": ", r.objects.size(), " glomeruli (", r.components, " candidates) in ",
             r.tiles_total, " tissue tiles of ", r.tiles_grid, " (", r.tiles_resumed, " resumed); tissue ",
             static_cast<int>(r.tissue_fraction * 100 + 0.5), " %; outputs in ", out);
    record.add({i, io::file_stem(path), ItemStatus::kOk, "",
                {{"objects", r.objects.size()}, {"tiles", r.tiles_total}}});
  }
  if (batch) record.write(p.out, /*complete=*/true);
  return 0;
}

Runner setup_slide(CLI::App& app) {
  auto p = std::make_shared<SlideParams>();
  app.add_option("--slide", p->slide, "slide file (SVS, NDPI, MRXS, OME-TIFF, TIFF, PNG, ...) or folder of slides")
      ->required();
  add_out_option(app, p->out, "output folder (one subfolder per slide for a folder)");
  app.add_option("--segmenter", p->segmenter,
                 "classical (weight-free) | glomsam (rough-mask box) | sam | medsam (boxes from the classical "
                 "detector)")
      ->capture_default_str();
  app.add_option("--checkpoint", p->checkpoint, "model checkpoint (model segmenters)");
  app.add_option("--model-config", p->model_config,
                 "glomsam: auto | official | tiny | JSON; sam/medsam: vit_b | vit_l | vit_h | medsam | JSON");
  app.add_option("--mpp", p->options.mpp, "work resolution in µm/px (0 = level 0); the level-0 size when the file has none")
      ->capture_default_str();
  app.add_option("--magnification", p->options.magnification, "work at this magnification (e.g. 20)");
  app.add_option("--level", p->options.level, "work at this pyramid level's resolution")->capture_default_str();
  app.add_option("--tile", p->options.tile,
                 "tile core side in work pixels (model segmenters: default = model input - 2 x halo)")
      ->capture_default_str()
      ->each([p](const std::string&) { p->tile_given = true; });
  app.add_option("--halo", p->options.halo, "context around each tile core in work pixels")->capture_default_str();
  app.add_option("--tissue", p->tissue, "auto (Otsu on the thumbnail) or none")->capture_default_str();
  app.add_option("--roi", p->roi, "X,Y,W,H in level-0 pixels");
  app.add_option("--channels", p->channels,
                 "source channel for R,G,B (-1 = black), e.g. 1,0,-1; default: the io::to_rgb8 rule");
  app.add_option("--object-type", p->object_type, "GeoJSON objectType: annotation or detection")->capture_default_str();
  app.add_option("--labels-at", p->labels_at,
                 "labels.ome.tif at level0 (lines up with the slide) or at the work resolution (smaller)")
      ->capture_default_str();
  app.add_option("--min-area", p->options.filter.min_area_um2, "smallest object (µm²)")->capture_default_str();
  app.add_option("--max-area", p->options.filter.max_area_um2, "largest object (µm²)")->capture_default_str();
  add_shard_option(app, p->shard, "slides of a folder");
  return [p] { return run_slide_cmd(*p); };
}

}  // namespace

NEPHRO_COMMAND("", "slide", "whole slides: tissue, tiles, glomeruli, stitching; GeoJSON, TSV, OME-TIFF labels",
               setup_slide);

}  // namespace nephroseg::cli
