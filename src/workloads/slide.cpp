// Whole slides, one or a folder (see nephroseg/workloads/slide.h).
#include "nephroseg/workloads/slide.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>

#include "nephroseg/core/error.h"
#include "nephroseg/io/image.h"
#include "nephroseg/slide/reader.h"

namespace nephroseg::workloads {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> list_slides(const std::string& slide) {
  std::error_code ec;
  if (!fs::is_directory(slide, ec)) return {slide};
  std::vector<std::string> slides;
  for (const auto& e : fs::directory_iterator(slide))
    if (e.is_regular_file() && slide::is_slide_file(e.path().string())) slides.push_back(e.path().string());
  std::sort(slides.begin(), slides.end());
  NEPHRO_CHECK(!slides.empty(), "--slide: no slide files in folder '", slide, "'");
  return slides;
}

nlohmann::json rect_json(const SlideBatchOptions& o) {
  if (!o.run.has_roi) return nullptr;
  return {o.run.roi.x, o.run.roi.y, o.run.roi.width, o.run.roi.height};
}

nlohmann::json settings_json(const SlideBatchOptions& o) {
  return {{"slide", o.slide},
          {"segmenter", o.segmenter.name},
          {"checkpoint", o.segmenter.checkpoint},
          {"model_config", o.segmenter.config},
          {"mpp", o.run.mpp},
          {"magnification", o.run.magnification},
          {"level", o.run.level},
          {"tile", o.run.tile},
          {"halo", o.run.halo},
          {"tissue", slide::tissue_mode_names().name(o.run.tissue.mode)},
          {"roi", rect_json(o)},
          {"channels", o.run.channels.channels},
          {"precision", precision_names().name(o.segmenter.precision)}};
}

std::string summary_line(const std::string& name, const slide::SlideRunResult& r, const std::string& out) {
  return detail::concat(name, ": ", r.objects.size(), " glomeruli (", r.components, " candidates) in ",
                        r.tiles_total, " tissue tiles of ", r.tiles_grid, " (", r.tiles_resumed,
                        " resumed); tissue ", static_cast<int>(r.tissue_fraction * 100 + 0.5),
                        " %; outputs in ", out);
}

}  // namespace

SlideBatchResult run_slide_batch(const SlideBatchOptions& options, const EventSink& events) {
  SlideBatchOptions o = options;
  const std::vector<std::string> slides = list_slides(o.slide);
  std::error_code ec;
  NEPHRO_CHECK(o.shard.whole() || fs::is_directory(o.slide, ec), "--shard splits a folder of slides; '",
               o.slide, "' is one slide");
  bool owns_any = false;
  for (size_t i = 0; i < slides.size(); ++i) owns_any = owns_any || o.shard.owns(i);
  // The segmenter is made once for every slide (before anything is written); a model
  // sees core + halo, so by default its input side is core + 2 x halo.
  std::unique_ptr<slide::TileSegmenter> seg;
  if (owns_any) seg = slide::make_segmenter(o.segmenter);
  const int side = seg ? seg->input_side() : 0;
  if (side > 0 && o.tile_from_model) {
    NEPHRO_CHECK(side > 2 * o.run.halo, "--halo ", o.run.halo, " leaves no tile core inside the model's ",
                 side, " px input");
    o.run.tile = side - 2 * o.run.halo;
  }
  SlideBatchResult result;
  result.inputs_total = slides.size();
  result.tile = o.run.tile;
  // A folder (or a shard) keeps a batch record for `nephroseg merge`; a rerun resumes
  // each slide from its finished tiles.
  const bool batch = slides.size() > 1 || !o.shard.whole();
  BatchRecord record("slide", o.shard, slides.size(), settings_json(o));
  if (batch) {
    fs::create_directories(o.out_dir);
    record.write(o.out_dir, /*complete=*/false);
  }
  for (size_t i = 0; i < slides.size(); ++i) {
    if (!o.shard.owns(i)) continue;
    const std::string& path = slides[i];
    const std::string name = io::file_stem(path);
    const std::string out = slides.size() == 1 ? o.out_dir : (fs::path(o.out_dir) / name).string();
    slide::SlideRunOptions run = o.run;
    run.progress = [&](int done, int total) {
      if (o.run.progress) o.run.progress(done, total);
      emit(events, item_event(Event::Kind::kProgress, static_cast<size_t>(done), static_cast<size_t>(total),
                              name, ""));
    };
    result.slides.push_back(slide::run_slide(path, out, *seg, run));
    const slide::SlideRunResult& r = result.slides.back();
    record.add({i, name, ItemStatus::kOk, "", {{"objects", r.objects.size()}, {"tiles", r.tiles_total}}});
    Event e = item_event(Event::Kind::kItemFinished, result.slides.size() - 1, slides.size(), name,
                         summary_line(name, r, out));
    e.detail = &r;
    emit(events, e);
  }
  if (batch) result.run_json = record.write(o.out_dir, /*complete=*/true);
  return result;
}

}  // namespace nephroseg::workloads
