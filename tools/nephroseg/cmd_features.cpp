// `nephroseg features`: DINOv2 normalised patch tokens of one image, as a .npy file.
#include <ATen/ATen.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "command.h"
#include "options.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/dinov2/dinov2.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/npy.h"
#include "nephroseg/io/tensor_mat.h"

namespace fs = std::filesystem;

namespace nephroseg::cli {
namespace {

struct FeaturesParams {
  std::string checkpoint;
  std::string model_type;
  std::string model_config;
  std::string image;
  std::string out;
  int size = 0;
};

int run_features(const FeaturesParams& p) {
  NEPHRO_CHECK(fs::is_regular_file(p.checkpoint), "checkpoint '", p.checkpoint,
               "' does not exist");
  NEPHRO_CHECK(fs::is_regular_file(p.image), "image '", p.image, "' does not exist");
  NEPHRO_CHECK(p.size >= 0, "--size must be >= 0 (got ", p.size, ")");
  const dinov2::Dinov2Config config = p.model_config.empty()
                                          ? dinov2::Dinov2Config::preset(p.model_type)
                                          : dinov2::Dinov2Config::from_json(p.model_config);
  NEPHRO_CHECK(p.size % config.patch_size == 0, "--size ", p.size,
               " must be a multiple of the patch size ", config.patch_size);

  // Check the image before the (slow) model load, so a bad size fails at once.
  const cv::Mat rgb = io::read_image_rgb(p.image);  // CV_8UC3, RGB
  const int64_t p14 = config.patch_size;
  if (p.size == 0) {
    NEPHRO_CHECK(rgb.rows % p14 == 0 && rgb.cols % p14 == 0, "image '", p.image, "' is ",
                 rgb.cols, "x", rgb.rows, " pixels; without --size both sides must be multiples of ",
                 p14, " (e.g. --size ", std::max<int64_t>(p14, (rgb.rows + p14 / 2) / p14 * p14),
                 " resizes to a square with PIL bicubic)");
  }
  const at::Tensor image = io::mat_view(rgb);  // [H, W, 3] uint8, no copy

  const auto t0 = std::chrono::steady_clock::now();
  auto model = dinov2::Dinov2Model::load(p.checkpoint, config, global_options().precision);
  const auto t1 = std::chrono::steady_clock::now();
  const dinov2::PatchFeatures features = model->patch_features(image, p.size);
  const auto t2 = std::chrono::steady_clock::now();
  const auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  log_info("features: ", p.image, " -> grid ", features.grid_h, "x", features.grid_w, " (",
           features.tokens.size(0), " patches x ", features.tokens.size(1),
           " dims); load ", secs(t0, t1), " s, forward ", secs(t1, t2), " s (",
           precision_names().name(model->precision()), ")");
  io::write_npy(p.out, features.tokens);  // float32 [N, D], atomically
  log_info("wrote ", p.out);
  return 0;
}

Runner setup_features(CLI::App& app) {
  auto p = std::make_shared<FeaturesParams>();
  app.add_option("--checkpoint", p->checkpoint,
                 "official DINOv2 checkpoint (dinov2_vit*14[_reg4]_pretrain.pth)")
      ->required();
  auto* type = app.add_option("--model-type", p->model_type,
                              "vits14|vitb14|vitl14|vitg14, optionally with _reg4");
  auto* config = app.add_option("--model-config", p->model_config,
                                "JSON file with the DinoVisionTransformer hyper-parameters");
  type->excludes(config);
  config->excludes(type);
  app.add_option("--image", p->image, "input image (PNG/JPEG/TIFF; read as 8-bit RGB)")
      ->required();
  app.add_option("--size", p->size,
                 "resize to SIZE x SIZE with PIL bicubic first (multiple of 14); 0 = keep "
                 "the image, whose sides must then be multiples of 14")
      ->capture_default_str();
  app.add_option("--out", p->out, "output .npy: float32 [N, D] normalised patch tokens, "
                                  "row-major over the patch grid")
      ->required();
  return [p, type, config]() {
    if (type->count() + config->count() != 1) throw UsageError("give exactly one of --model-type and --model-config");
    return run_features(*p);
  };
}

NEPHRO_COMMAND("", "features", "DINOv2 patch features of an image (x_norm_patchtokens as .npy)",
               setup_features);

}  // namespace
}  // namespace nephroseg::cli
