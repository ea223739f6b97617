// nephroseg glomsam predict: binary mask, instance labels, QuPath GeoJSON and overlay.
#include <ATen/ATen.h>
#include <opencv2/core.hpp>

#include <filesystem>
#include <iostream>
#include <sstream>

#include "command.h"
#include "nephroseg/core/error.h"
#include "nephroseg/glomsam/glomsam.h"
#include "nephroseg/io/geojson.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/io/overlay.h"

namespace nephroseg::cli {
namespace {

struct PredictParams {
  std::string checkpoint, image, box, out, config = "auto";
  bool auto_box = false;
  int64_t overlap = 128;
  double threshold = 0.5;
};

glomsam::Box parse_box(const std::string& s) {
  glomsam::Box b{};
  std::stringstream ss(s);
  std::string tok;
  int i = 0;
  while (std::getline(ss, tok, ',')) {
    NEPHRO_CHECK(i < 4, "--box: expected X0,Y0,X1,Y1, got '", s, "'");
    try {
      b[i++] = std::stof(tok);
    } catch (...) {
      NEPHRO_FAIL("--box: '", tok, "' is not a number");
    }
  }
  NEPHRO_CHECK(i == 4 && b[2] > b[0] && b[3] > b[1], "--box: expected X0,Y0,X1,Y1 with X1>X0, Y1>Y0, got '", s, "'");
  return b;
}

Runner setup(CLI::App& app) {
  auto p = std::make_shared<PredictParams>();
  app.add_option("--checkpoint", p->checkpoint, "GlomSAM checkpoint (train's best.pth or an official file)")->required();
  app.add_option("--image", p->image, "image file or folder of images")->required();
  auto* box = app.add_option("--box", p->box, "box prompt X0,Y0,X1,Y1 in image pixels");
  auto* autobox = app.add_flag("--auto", p->auto_box, "box from the rough mask (default when --box is absent)");
  box->excludes(autobox);
  app.add_option("--out", p->out, "output folder")->required();
  app.add_option("--config", p->config,
                 "model config: auto (stored by `glomsam train`, else official) | official | tiny | JSON file")
      ->capture_default_str();
  app.add_option("--overlap", p->overlap, "tile overlap for images larger than the model input")->capture_default_str();
  app.add_option("--threshold", p->threshold, "logit threshold (reference 0.5; 0 = sigmoid 0.5)")->capture_default_str();
  return [p]() {
    namespace fs = std::filesystem;
    NEPHRO_CHECK(fs::exists(p->checkpoint), "--checkpoint: '", p->checkpoint, "' does not exist");
    glomsam::GlomSamConfig cfg = glomsam::GlomSamConfig::official();
    if (p->config == "auto") {
      if (auto stored = glomsam::GlomSamModel::stored_config(p->checkpoint)) cfg = *stored;
    } else {
      cfg = glomsam::GlomSamConfig::preset(p->config);
    }
    cfg.mask_threshold = p->threshold;
    std::vector<std::string> images;
    if (fs::is_directory(p->image)) {
      images = io::list_image_files(p->image);
      NEPHRO_CHECK(!images.empty(), "--image: folder '", p->image, "' holds no images");
    } else {
      NEPHRO_CHECK(fs::exists(p->image), "--image: '", p->image, "' does not exist");
      images.push_back(p->image);
    }
    glomsam::PredictOptions po;
    if (!p->box.empty()) po.box = parse_box(p->box);
    po.tile_overlap = p->overlap;
    auto model = glomsam::GlomSamModel::load(p->checkpoint, cfg);
    fs::create_directories(p->out);
    for (const auto& path : images) {
      cv::Mat rgb = io::read_image_rgb(path);
      auto r = model->predict(rgb, po);
      const std::string stem = (fs::path(p->out) / io::file_stem(path)).string();
      at::Tensor m = r.mask.contiguous();
      cv::Mat mask(static_cast<int>(m.size(0)), static_cast<int>(m.size(1)), CV_8UC1, m.data_ptr());
      mask = mask.clone() * 255;
      cv::Mat labels = io::label_instances(mask, 8);
      io::write_mask_png(stem + "_mask.png", mask);
      io::write_label_tiff(stem + "_labels.tif", labels, io::max_label(labels) > 65535 ? 32 : 16);
      io::GeoJsonOptions go;
      go.class_name = "Glomerulus";
      io::write_geojson(stem + ".geojson", labels, go);
      io::write_png(stem + "_overlay.png", io::overlay_mask(rgb, mask, io::Rgb{255, 0, 0}));
      std::cout << path << ": " << io::max_label(labels) << " object(s), " << r.seconds << " s" << std::endl;
    }
    return 0;
  };
}

NEPHRO_COMMAND("glomsam", "predict", "segment glomeruli with a GlomSAM checkpoint", setup);

}  // namespace
}  // namespace nephroseg::cli
