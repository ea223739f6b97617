// `nephroseg medsam`: the MedSAM box baseline (the comparison in the GlomSAM paper),
// with MedSAM's own preprocessing (resize to 1024x1024 ignoring the aspect ratio,
// min-max normalisation) and post-processing (bilinear resize of sigmoid(logits),
// threshold 0.5). See include/nephroseg/sam/sam.h (SamPreprocess::kMedSam).
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <chrono>
#include <filesystem>
#include <sstream>

#include "command.h"
#include "options.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/core/atomic_file.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/io/npy.h"
#include "nephroseg/io/overlay.h"
#include "nephroseg/io/tensor_mat.h"
#include "nephroseg/sam/sam.h"

namespace fs = std::filesystem;

namespace nephroseg::cli {
namespace {

struct MedsamParams {
  std::string checkpoint;
  std::string model_config;
  std::string image;
  std::string box;
  std::string out;
};

int run_medsam(const MedsamParams& p) {
  const auto box = parse_box(p.box);
  const cv::Mat rgb = io::read_image_rgb(p.image);
  NEPHRO_CHECK(box[0] >= 0 && box[1] >= 0 && box[2] <= rgb.cols && box[3] <= rgb.rows, "--box ",
               p.box, " lies outside the image '", p.image, "' (", rgb.cols, "x", rgb.rows, ")");
  sam::SamConfig config = p.model_config.empty() ? sam::SamConfig::medsam()
                                                 : sam::SamConfig::from_json(p.model_config);
  config.preprocess = sam::SamPreprocess::kMedSam;
  auto model = sam::SamModel::load(p.checkpoint, config, global_options().precision);

  const auto embedding = model->encode(io::mat_view(rgb));
  sam::SamPrompt prompt;
  prompt.box = box;
  const sam::SamResult result = model->predict(embedding, prompt);

  const cv::Mat mask = io::tensor_to_mat(result.masks[0]);  // bool -> 0/255

  fs::create_directories(p.out);
  io::write_mask_png(p.out + "/mask.png", mask);
  io::write_npy(p.out + "/low_res_logits.npy", result.low_res_logits);
  cv::Mat overlay = io::overlay_mask(rgb, mask, io::colors::kCyan);
  cv::rectangle(overlay, cv::Point2f(box[0], box[1]), cv::Point2f(box[2], box[3]),
                cv::Scalar(255, 200, 0), 2);
  io::write_png(p.out + "/overlay.png", overlay);
  nlohmann::json j;
  j["model"] = {{"checkpoint", p.checkpoint}, {"type", "medsam"}, {"preprocess", "medsam"}};
  j["image"] = {{"path", p.image}, {"width", rgb.cols}, {"height", rgb.rows}};
  j["box"] = box;
  j["iou_prediction"] = result.iou[0].item<double>();
  j["foreground_pixels"] = cv::countNonZero(mask);
  j["timings_s"] = {{"encoder", embedding.encode_seconds}, {"decoder", result.seconds}};
  j["precision"] = global_options().precision_record();
  write_file_atomically(p.out + "/result.json", j.dump(2) + "\n");
  log_info("medsam: ", p.image, " -> ", p.out, "/mask.png (", cv::countNonZero(mask),
           " foreground pixels)");
  return 0;
}

Runner setup(CLI::App& app) {
  auto p = std::make_shared<MedsamParams>();
  app.add_option("--checkpoint", p->checkpoint, "MedSAM checkpoint (medsam_vit_b.pth)")->required();
  app.add_option("--model-config", p->model_config,
                 "architecture JSON instead of the vit_b layout (e.g. a tiny test model)");
  app.add_option("--image", p->image, "image file")->required();
  app.add_option("--box", p->box, "box prompt X0,Y0,X1,Y1 in original pixels")->required();
  add_out_option(app, p->out);
  return [p]() { return run_medsam(*p); };
}

NEPHRO_COMMAND("", "medsam", "MedSAM box baseline with MedSAM's pre/post-processing", setup);

}  // namespace
}  // namespace nephroseg::cli
