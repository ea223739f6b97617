// nephroseg glomsam predict: binary mask, instance labels, QuPath GeoJSON and overlay.
#include <cmath>
#include <ATen/ATen.h>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <filesystem>
#include <iostream>
#include <sstream>

#include "command.h"
#include "glomsam_ablation.h"
#include "options.h"
#include "nephroseg/core/batch_record.h"
#include "nephroseg/core/shard.h"
#include "nephroseg/core/atomic_file.h"
#include "nephroseg/core/error.h"
#include "nephroseg/glomsam/glomsam.h"
#include "nephroseg/io/geojson.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/io/overlay.h"
#include "nephroseg/train/dataset.h"
#include "nephroseg/train/metrics.h"

namespace nephroseg::cli {
namespace {

struct PredictParams {
  std::string checkpoint, image, box, out, config = "auto", gt;
  bool auto_box = false, box_from_gt = false;
  int64_t overlap = 128;
  int64_t patch_size = 0;
  double threshold = 0.5;
  std::string shard;
  bool resume = false;
  AblationSwitches ablation;
};

Runner setup(CLI::App& app) {
  auto p = std::make_shared<PredictParams>();
  app.add_option("--checkpoint", p->checkpoint, "GlomSAM checkpoint (train's best.pth or an official file)")->required();
  app.add_option("--image", p->image, "image file or folder of images")->required();
  auto* box = app.add_option("--box", p->box, "box prompt X0,Y0,X1,Y1 in image pixels");
  auto* autobox = app.add_flag("--auto", p->auto_box, "box from the rough mask (default when --box is absent)");
  box->excludes(autobox);
  add_out_option(app, p->out);
  app.add_option("--config", p->config,
                 "model config: auto (stored by `glomsam train`, else official) | official | tiny | JSON file")
      ->capture_default_str();
  app.add_option("--overlap", p->overlap, "tile overlap for images larger than the model input")->capture_default_str();
  app.add_option("--threshold", p->threshold, "logit threshold (reference 0.5; 0 = sigmoid 0.5)")->capture_default_str();
  app.add_option("--patch-size", p->patch_size,
                 "as in `glomsam train`: image pixels per model input side; the image is resized by "
                 "img_size / patch-size before inference and the result back (0 = native scale)")
      ->capture_default_str();
  app.add_option("--gt", p->gt, "ground-truth mask of a single --image: prints Dice and IoU");
  auto* fromgt = app.add_flag("--box-from-gt", p->box_from_gt,
                              "box prompt = bounding box of the --gt mask (the paper's simulated clinician box, no jitter)");
  fromgt->excludes(box);
  fromgt->excludes(autobox);
  add_shard_option(app, p->shard, "images");
  app.add_flag("--resume", p->resume, "skip images whose outputs an earlier run completed (reruns of a batch)");
  add_ablation_options(app, p->ablation, /*training=*/false);
  return [p]() {
    const Shard shard = parse_shard(p->shard);
    namespace fs = std::filesystem;
    NEPHRO_CHECK(fs::exists(p->checkpoint), "--checkpoint: '", p->checkpoint, "' does not exist");
    glomsam::GlomSamConfig cfg = glomsam::GlomSamConfig::official();
    if (p->config == "auto") {
      if (auto stored = glomsam::GlomSamModel::stored_config(p->checkpoint)) cfg = *stored;
    } else {
      cfg = glomsam::GlomSamConfig::preset(p->config);
    }
    p->ablation.apply(cfg);  // on top of the stored switches (checkpoints without a config)
    cfg.mask_threshold = p->threshold;
    std::vector<std::string> images;
    if (fs::is_directory(p->image)) {
      images = io::list_image_files(p->image);
      NEPHRO_CHECK(!images.empty(), "--image: folder '", p->image, "' holds no images");
    } else {
      NEPHRO_CHECK(fs::exists(p->image), "--image: '", p->image, "' does not exist");
      images.push_back(p->image);
    }
    NEPHRO_CHECK(p->gt.empty() || images.size() == 1, "--gt needs a single --image file");
    if (p->box_from_gt && p->gt.empty()) throw UsageError("--box-from-gt needs --gt");
    NEPHRO_CHECK(p->patch_size >= 0, "--patch-size must be >= 0");
    NEPHRO_CHECK(std::isfinite(p->threshold), "--threshold must be a finite logit (got ", p->threshold, ")");
    NEPHRO_CHECK(p->overlap >= 0, "--overlap must be >= 0 (got ", p->overlap, ")");
    at::Tensor gt;
    if (!p->gt.empty()) gt = train::read_binary_mask(p->gt);  // [H, W] {0,1}
    const double scale = p->patch_size > 0 ? static_cast<double>(cfg.sam.img_size) / static_cast<double>(p->patch_size) : 1.0;
    glomsam::PredictOptions po;
    if (!p->box.empty()) {
      const auto b = parse_box(p->box);
      po.box = glomsam::Box{b[0], b[1], b[2], b[3]};
    }
    if (p->box_from_gt) {
      NEPHRO_CHECK(gt.ne(0).any().item<bool>(), "--box-from-gt: the --gt mask '", p->gt,
                   "' has no foreground pixel, so it gives no box");
      po.box = glomsam::box_from_mask(gt);
    }
    if (po.box) {
      for (auto& v : *po.box) v = static_cast<float>(v * scale);
    }
    po.tile_overlap = p->overlap;
    // A folder (or a shard) keeps a batch record for `nephroseg merge` and --resume.
    const bool batch = images.size() > 1 || !shard.whole();
    BatchRecord record("glomsam-predict", shard, images.size(),
                       {{"image", p->image}, {"checkpoint", p->checkpoint}, {"config", p->config}, {"box", p->box},
                        {"threshold", p->threshold}, {"patch_size", p->patch_size}, {"overlap", p->overlap},
                        {"precision", precision_names().name(global_options().precision)}});
    std::vector<std::pair<size_t, std::string>> todo;
    for (size_t i = 0; i < images.size(); ++i) {
      if (!shard.owns(i)) continue;
      const std::string stem = (fs::path(p->out) / io::file_stem(images[i])).string();
      if (p->resume && fs::is_regular_file(stem + "_overlay.png")) {  // the last file written
        record.add({i, io::file_stem(images[i]), ItemStatus::kSkipped, "", nullptr});
        continue;
      }
      todo.emplace_back(i, images[i]);
    }
    std::shared_ptr<glomsam::GlomSamModel> model;
    if (!todo.empty()) model = glomsam::GlomSamModel::load(p->checkpoint, cfg, global_options().precision);
    fs::create_directories(p->out);
    remove_stale_temporaries(p->out);  // left by a run killed mid-write
    if (batch) record.write(p->out, /*complete=*/false);
    for (const auto& [image_index, path] : todo) {
      cv::Mat rgb = io::read_image_rgb(path);
      cv::Mat input = rgb;
      if (scale != 1.0) {
        cv::resize(rgb, input, cv::Size(static_cast<int>(std::lround(rgb.cols * scale)),
                                        static_cast<int>(std::lround(rgb.rows * scale))),
                   0, 0, cv::INTER_AREA);
      }
      auto r = model->predict(input, po);
      const std::string stem = (fs::path(p->out) / io::file_stem(path)).string();
      at::Tensor lg = r.logits.contiguous();
      cv::Mat logits(static_cast<int>(lg.size(0)), static_cast<int>(lg.size(1)), CV_32FC1, lg.data_ptr());
      if (scale != 1.0) {
        cv::Mat up;
        cv::resize(logits, up, rgb.size(), 0, 0, cv::INTER_LINEAR);
        logits = up;
      }
      cv::Mat mask;
      cv::compare(logits, p->threshold, mask, cv::CMP_GT);  // 0 / 255
      if (gt.defined()) {
        NEPHRO_CHECK(gt.size(0) == rgb.rows && gt.size(1) == rgb.cols, "--gt '", p->gt, "' is ",
                     gt.size(1), "x", gt.size(0), ", the image ", rgb.cols, "x", rgb.rows);
        at::Tensor pred = at::from_blob(mask.data, {rgb.rows, rgb.cols}, at::kByte).clone();
        auto c = train::count_binary(pred, gt);
        std::cout << path << ": Dice " << c.dice() << " IoU " << c.iou() << " recall " << c.recall() << std::endl;
      }
      cv::Mat labels = io::label_instances(mask, 8);
      io::write_mask_png(stem + "_mask.png", mask);
      io::write_label_tiff(stem + "_labels.tif", labels, io::max_label(labels) > 65535 ? 32 : 16);
      io::GeoJsonOptions go;
      go.class_name = "Glomerulus";
      io::write_geojson(stem + ".geojson", labels, go);
      io::write_png(stem + "_overlay.png", io::overlay_mask(rgb, mask, io::Rgb{255, 0, 0}));
      std::cout << path << ": " << io::max_label(labels) << " object(s), " << r.seconds << " s" << std::endl;
      record.add({image_index, io::file_stem(path), ItemStatus::kOk, "",
                  {{"objects", io::max_label(labels)}, {"foreground_px", cv::countNonZero(mask)}}});
    }
    if (batch) record.write(p->out, /*complete=*/true);
    return 0;
  };
}

NEPHRO_COMMAND("glomsam", "predict", "segment glomeruli with a GlomSAM checkpoint", setup);

}  // namespace
}  // namespace nephroseg::cli
