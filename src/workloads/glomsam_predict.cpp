// GlomSAM over images (see nephroseg/workloads/glomsam_predict.h).
#include "nephroseg/workloads/glomsam_predict.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <filesystem>
#include <sstream>

#include "nephroseg/core/atomic_file.h"
#include "nephroseg/core/error.h"
#include "nephroseg/io/geojson.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/io/overlay.h"
#include "nephroseg/train/dataset.h"
#include "nephroseg/train/metrics.h"

namespace nephroseg::workloads {
namespace {

namespace fs = std::filesystem;

void check_options(const GlomSamPredictOptions& o) {
  NEPHRO_CHECK(fs::exists(o.checkpoint), "--checkpoint: '", o.checkpoint, "' does not exist");
  NEPHRO_CHECK(!o.box_from_ground_truth || !o.ground_truth.empty(), "--box-from-gt needs --gt");
  NEPHRO_CHECK(!(o.box_from_ground_truth && o.box), "--box-from-gt and --box exclude each other");
  NEPHRO_CHECK(o.patch_size >= 0, "--patch-size must be >= 0");
  NEPHRO_CHECK(std::isfinite(o.threshold), "--threshold must be a finite logit (got ", o.threshold, ")");
  NEPHRO_CHECK(o.overlap >= 0, "--overlap must be >= 0 (got ", o.overlap, ")");
}

std::vector<std::string> list_images(const std::string& image) {
  if (fs::is_directory(image)) {
    std::vector<std::string> images = io::list_image_files(image);
    NEPHRO_CHECK(!images.empty(), "--image: folder '", image, "' holds no images");
    return images;
  }
  NEPHRO_CHECK(fs::exists(image), "--image: '", image, "' does not exist");
  return {image};
}

glomsam::GlomSamConfig model_config(const GlomSamPredictOptions& o) {
  glomsam::GlomSamConfig cfg = glomsam::GlomSamModel::config_for(o.checkpoint, o.config);
  o.ablation.apply(cfg);  // on top of the stored switches (checkpoints without a config)
  cfg.mask_threshold = o.threshold;
  return cfg;
}

// The box prompt in model-input pixels (scaled by `scale`), if any.
glomsam::PredictOptions predict_options(const GlomSamPredictOptions& o, const at::Tensor& gt, double scale) {
  glomsam::PredictOptions po;
  po.box = o.box;
  if (o.box_from_ground_truth) {
    NEPHRO_CHECK(gt.ne(0).any().item<bool>(), "--box-from-gt: the --gt mask '", o.ground_truth,
                 "' has no foreground pixel, so it gives no box");
    po.box = glomsam::box_from_mask(gt);
  }
  if (po.box)
    for (auto& v : *po.box) v = static_cast<float>(v * scale);
  po.tile_overlap = o.overlap;
  return po;
}

nlohmann::json settings_json(const GlomSamPredictOptions& o) {
  return {{"image", o.image},
          {"checkpoint", o.checkpoint},
          {"config", o.config},
          {"box", o.box ? nlohmann::json(std::vector<float>(o.box->begin(), o.box->end()))
                        : nlohmann::json(nullptr)},
          {"threshold", o.threshold},
          {"patch_size", o.patch_size},
          {"overlap", o.overlap},
          {"precision", precision_names().name(o.precision.used)}};
}

// The logits at the image's own size and the mask (0/255) they give.
cv::Mat predict_mask(glomsam::GlomSamModel& model, const cv::Mat& rgb, const glomsam::PredictOptions& po,
                     double scale, double threshold, double* seconds) {
  cv::Mat input = rgb;
  if (scale != 1.0)
    cv::resize(rgb, input,
               cv::Size(static_cast<int>(std::lround(rgb.cols * scale)),
                        static_cast<int>(std::lround(rgb.rows * scale))),
               0, 0, cv::INTER_AREA);
  const glomsam::PredictResult r = model.predict(input, po);
  *seconds = r.seconds;
  const at::Tensor lg = r.logits.contiguous();
  cv::Mat logits(static_cast<int>(lg.size(0)), static_cast<int>(lg.size(1)), CV_32FC1, lg.data_ptr());
  if (scale != 1.0) {
    cv::Mat up;
    cv::resize(logits, up, rgb.size(), 0, 0, cv::INTER_LINEAR);
    logits = up;
  }
  cv::Mat mask;
  cv::compare(logits, threshold, mask, cv::CMP_GT);  // 0 / 255
  return mask;
}

void write_outputs(const std::string& stem, const cv::Mat& rgb, const cv::Mat& mask, const cv::Mat& labels) {
  io::write_mask_png(stem + "_mask.png", mask);
  io::write_label_tiff(stem + "_labels.tif", labels, io::max_label(labels) > 65535 ? 32 : 16);
  io::GeoJsonOptions go;
  go.class_name = "Glomerulus";
  io::write_geojson(stem + ".geojson", labels, go);
  io::write_png(stem + "_overlay.png", io::overlay_mask(rgb, mask, io::Rgb{255, 0, 0}));  // last
}

std::string format(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

}  // namespace

GlomSamPredictResult run_glomsam_predict(const GlomSamPredictOptions& o, const EventSink& events) {
  check_options(o);
  const glomsam::GlomSamConfig cfg = model_config(o);
  const std::vector<std::string> images = list_images(o.image);
  NEPHRO_CHECK(o.ground_truth.empty() || images.size() == 1, "--gt needs a single --image file");
  at::Tensor gt;
  if (!o.ground_truth.empty()) gt = train::read_binary_mask(o.ground_truth);  // [H, W] {0,1}
  const double scale =
      o.patch_size > 0 ? static_cast<double>(cfg.sam.img_size) / static_cast<double>(o.patch_size) : 1.0;
  const glomsam::PredictOptions po = predict_options(o, gt, scale);

  GlomSamPredictResult result;
  result.inputs_total = images.size();
  // A folder (or a shard) keeps a batch record for `nephroseg merge` and resume.
  const bool batch = images.size() > 1 || !o.shard.whole();
  BatchRecord record("glomsam-predict", o.shard, images.size(), settings_json(o));
  std::vector<size_t> todo;
  for (size_t i = 0; i < images.size(); ++i) {
    if (!o.shard.owns(i)) continue;
    const std::string stem = (fs::path(o.out_dir) / io::file_stem(images[i])).string();
    if (o.resume && fs::is_regular_file(stem + "_overlay.png")) {  // the last file written
      record.add({i, io::file_stem(images[i]), ItemStatus::kSkipped, "", nullptr});
      ++result.skipped;
      continue;
    }
    todo.push_back(i);
  }
  std::shared_ptr<glomsam::GlomSamModel> model;
  if (!todo.empty()) model = glomsam::GlomSamModel::load(o.checkpoint, cfg, o.precision.used);
  fs::create_directories(o.out_dir);
  remove_stale_temporaries(o.out_dir);  // left by a run killed mid-write
  if (batch) record.write(o.out_dir, /*complete=*/false);
  for (size_t n = 0; n < todo.size(); ++n) {
    const std::string& path = images[todo[n]];
    const cv::Mat rgb = io::read_image_rgb(path);
    GlomSamPredictItem item;
    item.path = path;
    const cv::Mat mask = predict_mask(*model, rgb, po, scale, o.threshold, &item.seconds);
    if (gt.defined()) {
      NEPHRO_CHECK(gt.size(0) == rgb.rows && gt.size(1) == rgb.cols, "--gt '", o.ground_truth, "' is ",
                   gt.size(1), "x", gt.size(0), ", the image ", rgb.cols, "x", rgb.rows);
      const at::Tensor pred = at::from_blob(mask.data, {rgb.rows, rgb.cols}, at::kByte).clone();
      const auto c = train::count_binary(pred, gt);
      item.dice = c.dice();
      item.iou = c.iou();
      item.recall = c.recall();
      Event e;
      e.kind = Event::Kind::kInfo;
      e.item = io::file_stem(path);
      e.message = path + ": Dice " + format(*item.dice) + " IoU " + format(*item.iou) + " recall " +
                  format(*item.recall);
      emit(events, e);
    }
    const cv::Mat labels = io::label_instances(mask, 8);
    write_outputs((fs::path(o.out_dir) / io::file_stem(path)).string(), rgb, mask, labels);
    item.objects = io::max_label(labels);
    item.foreground_px = cv::countNonZero(mask);
    record.add({todo[n],
                io::file_stem(path),
                ItemStatus::kOk,
                "",
                {{"objects", item.objects}, {"foreground_px", item.foreground_px}}});
    result.items.push_back(item);
    Event e =
        item_event(Event::Kind::kItemFinished, n, todo.size(), io::file_stem(path),
                   path + ": " + std::to_string(item.objects) + " object(s), " + format(item.seconds) + " s");
    e.detail = static_cast<const GlomSamPredictItem*>(&result.items.back());
    emit(events, e);
  }
  if (batch) result.run_json = record.write(o.out_dir, /*complete=*/true);
  return result;
}

}  // namespace nephroseg::workloads
