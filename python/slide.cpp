// python/slide.cpp: whole-slide inference (`nephroseg slide`).
#include "common.h"
#include "nephroseg/slide/run.h"

namespace nephroseg::python {

void bind_slide(py::module_& m) {
  m.def(
      "run_slide",
      [](const std::string& slide_path, const std::string& out_dir, const std::string& segmenter,
         const std::string& checkpoint, double mpp, double magnification, int level, int tile, int halo,
         const std::string& tissue, const py::object& roi, const std::string& object_type,
         const py::object& progress) {
        slide::SlideRunOptions o;
        o.mpp = mpp;
        o.magnification = magnification;
        o.level = level;
        o.tile = tile;
        o.halo = halo;
        o.tissue.mode = slide::tissue_mode_names().parse(tissue, "tissue");
        o.object_type = slide::object_type_names().parse(object_type, "object_type");
        if (!roi.is_none()) {
          std::vector<int> r;
          try {
            r = roi.cast<std::vector<int>>();
          } catch (const py::cast_error&) {
          }
          if (r.size() != 4 || r[2] <= 0 || r[3] <= 0)
            value_error("roi must be 4 integers x, y, width, height (level-0 pixels, width and height > 0)");
          o.has_roi = true;
          o.roi = cv::Rect(r[0], r[1], r[2], r[3]);
        }
        if (!progress.is_none()) {
          o.progress = [&progress](int done, int total) {
            py::gil_scoped_acquire acquire;
            progress(done, total);
          };
        }
        std::unique_ptr<slide::TileSegmenter> seg = slide::make_segmenter(segmenter, checkpoint);
        slide::SlideRunResult r;
        {
          py::gil_scoped_release release;
          r = slide::run_slide(slide_path, out_dir, *seg, o);
        }
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
      },
      py::arg("slide"), py::arg("out_dir"), py::kw_only(), py::arg("segmenter") = "classical",
      py::arg("checkpoint") = "", py::arg("mpp") = 0.0, py::arg("magnification") = 0.0, py::arg("level") = -1,
      py::arg("tile") = 1024, py::arg("halo") = 128, py::arg("tissue") = "auto", py::arg("roi") = py::none(),
      py::arg("object_type") = "annotation", py::arg("progress") = py::none(),
      "Whole-slide glomerulus detection, as `nephroseg slide`: writes objects.geojson,\n"
      "objects.tsv, labels.ome.tif, thumbnail.png and run.json under out_dir (resumable).\n"
      "Returns a dict with the tile counts and the objects (level-0 pixels, µm).");
}

}  // namespace nephroseg::python
