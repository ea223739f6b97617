// python/workloads.cpp: the batch workloads not bound elsewhere (SAM / MedSAM over images,
// GlomSAM predict, merging shards), as the CLI runs them. Keyword defaults are read from
// the workloads' options structs (nephroseg/workloads/*.h), so Python and the CLI share
// them; results are dicts (docs/python.md).
#include "common.h"
#include "nephroseg/sam/prompts_file.h"
#include "nephroseg/workloads/glomsam_predict.h"
#include "nephroseg/workloads/merge.h"
#include "nephroseg/workloads/sam.h"

namespace nephroseg::python {
namespace {

// progress(index, total, item name) after each item, with the GIL.
workloads::EventSink item_progress(const py::object& progress) {
  if (progress.is_none()) return {};
  return [&progress](const workloads::Event& e) {
    if (e.kind != workloads::Event::Kind::kItemFinished) return;
    py::gil_scoped_acquire acquire;
    progress(e.index, e.total, e.item);
  };
}

sam::PromptSpec prompt_arg(const py::object& points, const py::object& box, const std::string& mask_input,
                           bool multimask) {
  sam::PromptSpec spec;
  if (!points.is_none())
    for (const auto& p : points.cast<std::vector<std::vector<float>>>()) sam::add_point(spec, p, "points");
  if (!box.is_none()) sam::set_box(spec, box.cast<std::vector<float>>(), "box");
  if (!mask_input.empty()) sam::set_mask_input(spec, mask_input, "mask_input");
  spec.prompt.multimask = multimask;
  return spec;
}

}  // namespace

void bind_workloads(py::module_& m) {
  const workloads::SamBatchOptions sam_defaults;
  m.def(
      "sam_batch",
      [](const std::vector<std::string>& images, const std::string& out_dir, const std::string& checkpoint,
         const std::string& model_type, const std::string& model_config, const py::object& points,
         const py::object& box, const std::string& mask_input, bool multimask, const std::string& prompts_file,
         bool resume, const std::string& shard, const std::string& precision, bool force_precision,
         const py::object& progress) {
        workloads::SamBatchOptions o;
        o.images = images;
        o.out_dir = out_dir;
        o.checkpoint = checkpoint;
        o.model_type = model_type;
        o.model_config = model_config;
        o.prompt = prompt_arg(points, box, mask_input, multimask);
        o.prompts_file = prompts_file;
        o.resume = resume;
        o.shard = shard_arg(shard);
        o.precision = model_precision_arg(precision, force_precision);
        const workloads::EventSink sink = item_progress(progress);
        workloads::SamBatchResult r;
        {
          py::gil_scoped_release release;
          r = workloads::run_sam_batch(o, sink);
        }
        py::dict d;
        d["inputs_total"] = r.inputs_total;
        d["segmented"] = r.segmented;
        d["skipped"] = r.skipped;
        d["out_dirs"] = r.out_dirs;
        d["run_json"] = r.run_json;
        return d;
      },
      py::arg("images"), py::arg("out_dir"), py::kw_only(), py::arg("checkpoint"),
      py::arg("model_type") = sam_defaults.model_type, py::arg("model_config") = sam_defaults.model_config,
      py::arg("points") = py::none(), py::arg("box") = py::none(), py::arg("mask_input") = "",
      py::arg("multimask") = false, py::arg("prompts_file") = sam_defaults.prompts_file,
      py::arg("resume") = sam_defaults.resume, py::arg("shard") = "", py::arg("precision") = "fp32",
      py::arg("force_precision") = false, py::arg("progress") = py::none(),
      "SAM / MedSAM over images (files or folders), as `nephroseg sam`: per image mask.png,\n"
      "masks/, low_res_logits.npy, overlay.png and result.json (out_dir/<stem>/ for several\n"
      "images), plus run.json. points: [[x, y, label], ...]; box: [x0, y0, x1, y1] (original\n"
      "pixels): the prompt of images prompts_file does not list. progress(index, total, name)\n"
      "after each image. Returns a dict: inputs_total, segmented, skipped, out_dirs, run_json.");

  const workloads::GlomSamPredictOptions gp;
  m.def(
      "glomsam_predict",
      [](const std::string& checkpoint, const std::string& image, const std::string& out_dir,
         const std::string& config, const py::object& box, const std::string& ground_truth,
         bool box_from_ground_truth, int64_t overlap, int64_t patch_size, double threshold, bool resume,
         const std::string& shard, const std::string& precision, bool force_precision, const py::object& progress) {
        workloads::GlomSamPredictOptions o;
        o.checkpoint = checkpoint;
        o.image = image;
        o.out_dir = out_dir;
        o.config = config;
        if (!box.is_none()) {
          const auto b = box.cast<std::vector<float>>();
          if (b.size() != 4) value_error("box must be [x0, y0, x1, y1]");
          o.box = glomsam::Box{b[0], b[1], b[2], b[3]};
        }
        o.ground_truth = ground_truth;
        o.box_from_ground_truth = box_from_ground_truth;
        o.overlap = overlap;
        o.patch_size = patch_size;
        o.threshold = threshold;
        o.resume = resume;
        o.shard = shard_arg(shard);
        o.precision = model_precision_arg(precision, force_precision);
        const workloads::EventSink sink = item_progress(progress);
        workloads::GlomSamPredictResult r;
        {
          py::gil_scoped_release release;
          r = workloads::run_glomsam_predict(o, sink);
        }
        py::list items;
        for (const auto& it : r.items) {
          py::dict d;
          d["path"] = it.path;
          d["objects"] = it.objects;
          d["foreground_px"] = it.foreground_px;
          d["seconds"] = it.seconds;
          d["dice"] = it.dice ? py::cast(*it.dice) : py::none();
          d["iou"] = it.iou ? py::cast(*it.iou) : py::none();
          items.append(d);
        }
        py::dict d;
        d["items"] = items;
        d["inputs_total"] = r.inputs_total;
        d["skipped"] = r.skipped;
        d["run_json"] = r.run_json;
        return d;
      },
      py::arg("checkpoint"), py::arg("image"), py::arg("out_dir"), py::kw_only(), py::arg("config") = gp.config,
      py::arg("box") = py::none(), py::arg("ground_truth") = gp.ground_truth,
      py::arg("box_from_ground_truth") = gp.box_from_ground_truth, py::arg("overlap") = gp.overlap,
      py::arg("patch_size") = gp.patch_size, py::arg("threshold") = gp.threshold, py::arg("resume") = gp.resume,
      py::arg("shard") = "", py::arg("precision") = "fp32", py::arg("force_precision") = false,
      py::arg("progress") = py::none(),
      "GlomSAM over an image or a folder, as `nephroseg glomsam predict`: <stem>_mask.png,\n"
      "<stem>_labels.tif, <stem>.geojson (QuPath) and <stem>_overlay.png per image. box None:\n"
      "the automatic box from the rough mask. Returns a dict: items (path, objects,\n"
      "foreground_px, seconds, dice/iou with ground_truth), inputs_total, skipped, run_json.");

  m.def(
      "merge_shards",
      [](const std::string& out_dir) {
        workloads::MergeResult r;
        {
          py::gil_scoped_release release;
          r = workloads::merge_shards(out_dir);
        }
        py::dict d;
        d["command"] = r.command;
        d["shards"] = r.shards;
        d["inputs"] = r.inputs;
        d["failed"] = r.failed;
        return d;
      },
      py::arg("out_dir"),
      "Combines the shards of a sharded batch in out_dir, as `nephroseg merge OUT` (any\n"
      "workload: the records name it). Returns a dict: command, shards, inputs, failed.");
}

}  // namespace nephroseg::python
