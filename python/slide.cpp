// python/slide.cpp: whole slides through the slide workload (nephroseg/workloads/slide.h),
// as `nephroseg slide`: run_slide (one slide) and run_slides (a folder, shards).
#include <filesystem>

#include "common.h"
#include "nephroseg/workloads/slide.h"

namespace nephroseg::python {
namespace {

py::dict slide_to_dict(const slide::SlideRunResult& r) {
  py::dict d;
  d["complete"] = r.complete;
  d["tiles_total"] = r.tiles_total;
  d["tiles_processed"] = r.tiles_processed;
  d["tiles_resumed"] = r.tiles_resumed;
  d["tissue_fraction"] = r.tissue_fraction;
  d["work_mpp"] = r.work_mpp;
  d["components"] = r.components;
  py::list objects;
  for (const auto& ob : r.objects) {
    py::dict od;
    od["id"] = ob.id;
    od["centroid"] = py::make_tuple(ob.centroid_x, ob.centroid_y);
    od["area_um2"] = ob.area_um2;
    od["perimeter_um"] = ob.perimeter_um;
    od["equivalent_diameter_um"] = ob.equivalent_diameter_um;
    od["solidity"] = ob.solidity;
    od["score"] = ob.score;
    od["bbox"] = py::make_tuple(ob.bbox_l0.x, ob.bbox_l0.y, ob.bbox_l0.width, ob.bbox_l0.height);
    objects.append(od);
  }
  d["objects"] = objects;
  return d;
}

// The keyword arguments shared by run_slide and run_slides, into the workload's options.
workloads::SlideBatchOptions slide_options(const std::string& slide_path, const std::string& out_dir,
                                           const std::string& segmenter, const std::string& checkpoint,
                                           const std::string& model_config, double mpp, double magnification,
                                           int level, const py::object& tile, int halo, const std::string& tissue,
                                           const py::object& roi, const std::string& object_type,
                                           const std::string& precision, bool force_precision) {
  workloads::SlideBatchOptions o;
  o.slide = slide_path;
  o.out_dir = out_dir;
  o.segmenter.name = segmenter;
  o.segmenter.checkpoint = checkpoint;
  o.segmenter.config = model_config;
  o.segmenter.precision = precision_arg(precision, force_precision);
  o.run.mpp = mpp;
  o.run.magnification = magnification;
  o.run.level = level;
  if (!tile.is_none()) {
    o.run.tile = tile.cast<int>();
    o.tile_from_model = false;
  }
  o.run.halo = halo;
  o.run.tissue.mode = slide::tissue_mode_names().parse(tissue, "tissue");
  o.run.object_type = slide::object_type_names().parse(object_type, "object_type");
  if (!roi.is_none()) {
    std::vector<int> r;
    try {
      r = roi.cast<std::vector<int>>();
    } catch (const py::cast_error&) {
    }
    if (r.size() != 4 || r[2] <= 0 || r[3] <= 0)
      value_error("roi must be 4 integers x, y, width, height (level-0 pixels, width and height > 0)");
    o.run.has_roi = true;
    o.run.roi = cv::Rect(r[0], r[1], r[2], r[3]);
  }
  return o;
}

// progress(done, total) per tile, with the GIL.
workloads::EventSink tile_progress(const py::object& progress) {
  if (progress.is_none()) return {};
  return [&progress](const workloads::Event& e) {
    if (e.kind != workloads::Event::Kind::kProgress) return;
    py::gil_scoped_acquire acquire;
    progress(static_cast<int>(e.index), static_cast<int>(e.total));
  };
}

workloads::SlideBatchResult run(const workloads::SlideBatchOptions& o, const py::object& progress) {
  const workloads::EventSink sink = tile_progress(progress);
  py::gil_scoped_release release;
  return workloads::run_slide_batch(o, sink);
}

}  // namespace

void bind_slide(py::module_& m) {
  const workloads::SlideBatchOptions defaults;
  m.def(
      "run_slide",
      [](const std::string& slide_path, const std::string& out_dir, const std::string& segmenter,
         const std::string& checkpoint, const std::string& model_config, double mpp, double magnification, int level,
         const py::object& tile, int halo, const std::string& tissue, const py::object& roi,
         const std::string& object_type, const std::string& precision, bool force_precision,
         const py::object& progress) {
        std::error_code ec;
        NEPHRO_CHECK(!std::filesystem::is_directory(slide_path, ec), "run_slide: '", slide_path,
                     "' is a folder; use run_slides");
        workloads::SlideBatchOptions o =
            slide_options(slide_path, out_dir, segmenter, checkpoint, model_config, mpp, magnification, level, tile,
                          halo, tissue, roi, object_type, precision, force_precision);
        const workloads::SlideBatchResult r = run(o, progress);
        py::dict d = slide_to_dict(r.slides.front());
        d["tile"] = r.tile;
        return d;
      },
      py::arg("slide"), py::arg("out_dir"), py::kw_only(), py::arg("segmenter") = defaults.segmenter.name,
      py::arg("checkpoint") = "", py::arg("model_config") = "", py::arg("mpp") = defaults.run.mpp,
      py::arg("magnification") = defaults.run.magnification, py::arg("level") = defaults.run.level,
      py::arg("tile") = py::none(), py::arg("halo") = defaults.run.halo, py::arg("tissue") = "auto",
      py::arg("roi") = py::none(), py::arg("object_type") = "annotation", py::arg("precision") = "fp32",
      py::arg("force_precision") = false, py::arg("progress") = py::none(),
      "Whole-slide glomerulus detection of one slide, as `nephroseg slide`: writes objects.geojson,\n"
      "objects.tsv, labels.ome.tif, thumbnail.png and run.json under out_dir (resumable).\n"
      "tile None: 1024 for the classical segmenter, the model's input - 2 x halo for a model.\n"
      "progress(done, total) is called per tile. Returns a dict with the tile counts, the tile\n"
      "side used and the objects (level-0 pixels, µm).");
  m.def(
      "run_slides",
      [](const std::string& folder, const std::string& out_dir, const std::string& segmenter,
         const std::string& checkpoint, const std::string& model_config, double mpp, double magnification, int level,
         const py::object& tile, int halo, const std::string& tissue, const py::object& roi,
         const std::string& object_type, const std::string& shard, const std::string& precision,
         bool force_precision, const py::object& progress) {
        workloads::SlideBatchOptions o =
            slide_options(folder, out_dir, segmenter, checkpoint, model_config, mpp, magnification, level, tile,
                          halo, tissue, roi, object_type, precision, force_precision);
        o.shard = shard_arg(shard);
        const workloads::SlideBatchResult r = run(o, progress);
        py::list slides;
        for (const auto& s : r.slides) slides.append(slide_to_dict(s));
        py::dict d;
        d["slides"] = slides;
        d["inputs_total"] = r.inputs_total;
        d["tile"] = r.tile;
        d["run_json"] = r.run_json;
        return d;
      },
      py::arg("folder"), py::arg("out_dir"), py::kw_only(), py::arg("segmenter") = defaults.segmenter.name,
      py::arg("checkpoint") = "", py::arg("model_config") = "", py::arg("mpp") = defaults.run.mpp,
      py::arg("magnification") = defaults.run.magnification, py::arg("level") = defaults.run.level,
      py::arg("tile") = py::none(), py::arg("halo") = defaults.run.halo, py::arg("tissue") = "auto",
      py::arg("roi") = py::none(), py::arg("object_type") = "annotation", py::arg("shard") = "",
      py::arg("precision") = "fp32", py::arg("force_precision") = false, py::arg("progress") = py::none(),
      "A folder of slides, as `nephroseg slide --slide FOLDER`: one subfolder of outputs per slide\n"
      "and run.json; shard 'K/N' takes slides i with i mod N = K-1 (then nephroseg.merge_shards).\n"
      "Returns a dict: slides (one dict per slide processed), inputs_total, tile, run_json.");
}

}  // namespace nephroseg::python
