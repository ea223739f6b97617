// `nephroseg bench glomsam`: training throughput (img/s) and inference time per patch
// of GlomSAM with random weights (full-size ViT-B + ResNet101 by default), and the
// process's peak resident memory.
#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <fstream>
#include <iomanip>
#include <iostream>

#include "command.h"
#include "models/glomsam/glomsam.h"
#include "nephroseg/core/error.h"
#include "nephroseg/glomsam/glomsam.h"
#include "nephroseg/train/losses.h"

namespace nephroseg::cli {
namespace {

int64_t peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return 0;
}

struct BenchParams {
  std::string config = "official";
  int64_t batch_size = 1;
  int64_t train_steps = 2;
  int64_t infer_runs = 2;
  int64_t warmup = 1;
};

Runner setup(CLI::App& app) {
  auto p = std::make_shared<BenchParams>();
  app.add_option("--config", p->config, "official | tiny | JSON file")->capture_default_str();
  app.add_option("--batch-size", p->batch_size, "training batch size")->capture_default_str();
  app.add_option("--train-steps", p->train_steps, "timed training steps (0 = skip)")->capture_default_str();
  app.add_option("--infer-runs", p->infer_runs, "timed inference passes (0 = skip)")->capture_default_str();
  app.add_option("--warmup", p->warmup, "untimed warm-up passes of each kind")->capture_default_str();
  return [p]() {
    using Clock = std::chrono::steady_clock;
    auto cfg = glomsam::GlomSamConfig::preset(p->config);
    const int64_t S = cfg.sam.img_size;
    auto model = glomsam::GlomSamModel::create(cfg, 0);
    auto mod = std::static_pointer_cast<models::glomsam::GlomSamImpl>(model->module_handle());
    mod->freeze(true);
    int64_t n_params = 0, n_train = 0;
    for (const auto& t : mod->unique_parameters()) {
      n_params += t.numel();
      if (t.requires_grad()) n_train += t.numel();
    }
    std::cout << "GlomSAM " << cfg.sam.name << ": " << n_params << " parameters (" << n_train
              << " trainable), input " << S << "x" << S << ", threads " << at::get_num_threads() << std::endl;
    const int64_t B = p->batch_size;
    at::manual_seed(1);
    at::Tensor images = at::rand({B, 3, S, S});
    at::Tensor masks = at::zeros({B, 1, S, S}, at::kLong);
    masks.narrow(2, S / 4, S / 2).narrow(3, S / 4, S / 2).fill_(1);
    at::Tensor boxes = at::tensor({float(S / 4 - 5), float(S / 4 - 5), float(3 * S / 4 + 5), float(3 * S / 4 + 5)})
                           .view({1, 4}).repeat({B, 1});
    std::cout << std::fixed << std::setprecision(3);
    if (p->train_steps > 0) {
      torch::optim::AdamW opt(mod->unique_parameters(), torch::optim::AdamWOptions(1e-4).weight_decay(0.01));
      mod->train();
      double seconds = 0;
      for (int64_t i = 0; i < p->warmup + p->train_steps; ++i) {
        const auto t0 = Clock::now();
        opt.zero_grad();
        auto loss = train::glomsam_loss(mod->forward(images, boxes), masks);
        loss.total.backward();
        opt.step();
        const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
        if (i >= p->warmup) seconds += dt;
      }
      std::cout << "train: " << p->train_steps << " steps of batch " << B << ", "
                << seconds / p->train_steps << " s/step, "
                << static_cast<double>(B * p->train_steps) / seconds << " img/s" << std::endl;
    }
    if (p->infer_runs > 0) {
      mod->eval();
      at::NoGradGuard no_grad;
      at::Tensor one = images.slice(0, 0, 1);
      at::Tensor box = boxes.slice(0, 0, 1);
      double seconds = 0;
      for (int64_t i = 0; i < p->warmup + p->infer_runs; ++i) {
        const auto t0 = Clock::now();
        at::Tensor logits = mod->forward(one, box);
        const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
        if (i >= p->warmup) seconds += dt;
      }
      std::cout << "inference: " << seconds / p->infer_runs << " s per " << S << "x" << S << " patch" << std::endl;
    }
    std::cout << "peak RSS: " << static_cast<double>(peak_rss_bytes()) / (1 << 30) << " GiB" << std::endl;
    return 0;
  };
}

NEPHRO_COMMAND("bench", "glomsam", "GlomSAM training img/s, inference s/patch and peak memory", setup);

}  // namespace
}  // namespace nephroseg::cli
