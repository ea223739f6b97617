// `nephroseg bench glomsam`: training throughput (img/s) and inference time per patch
// of GlomSAM with random weights (full-size ViT-B + ResNet101 by default), and the
// process's peak resident memory.
#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <iomanip>
#include <ostream>

#include "bench_util.h"
#include "models/glomsam/internal.h"
#include "nephroseg/bench/bench.h"
#include "nephroseg/core/error.h"
#include "nephroseg/glomsam/glomsam.h"
#include "nephroseg/train/losses.h"

namespace nephroseg::bench {

int run_glomsam(const GlomsamBenchOptions& o, std::ostream& out) {
  auto cfg = glomsam::GlomSamConfig::preset(o.config);
  const int64_t S = cfg.sam.img_size;
  auto model = glomsam::GlomSamModel::create(cfg, 0);
  models::glomsam::GlomSamImpl* mod = &glomsam::internal::module(*model);
  mod->freeze(true);
  int64_t n_params = 0, n_train = 0;
  for (const auto& t : mod->unique_parameters()) {
    n_params += t.numel();
    if (t.requires_grad()) n_train += t.numel();
  }
  out << "GlomSAM " << cfg.sam.name << ": " << n_params << " parameters (" << n_train
      << " trainable), input " << S << "x" << S << ", threads " << at::get_num_threads() << std::endl;
  const int64_t B = o.batch_size;
  at::manual_seed(1);
  at::Tensor images = at::rand({B, 3, S, S});
  at::Tensor masks = at::zeros({B, 1, S, S}, at::kLong);
  masks.narrow(2, S / 4, S / 2).narrow(3, S / 4, S / 2).fill_(1);
  at::Tensor boxes = at::tensor({float(S / 4 - 5), float(S / 4 - 5), float(3 * S / 4 + 5), float(3 * S / 4 + 5)})
                         .view({1, 4}).repeat({B, 1});
  out << std::fixed << std::setprecision(3);
  if (o.train_steps > 0) {
    torch::optim::AdamW opt(mod->unique_parameters(), torch::optim::AdamWOptions(1e-4).weight_decay(0.01));
    mod->train();
    double seconds = 0;
    for (int64_t i = 0; i < o.warmup + o.train_steps; ++i) {
      const auto t0 = Clock::now();
      opt.zero_grad();
      auto loss = train::glomsam_loss(mod->forward(images, boxes), masks);
      loss.total.backward();
      opt.step();
      const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
      if (i >= o.warmup) seconds += dt;
    }
    out << "train: " << o.train_steps << " steps of batch " << B << ", "
        << seconds / o.train_steps << " s/step, "
        << static_cast<double>(B * o.train_steps) / seconds << " img/s" << std::endl;
  }
  if (o.infer_runs > 0) {
    mod->eval();
    at::NoGradGuard no_grad;
    at::Tensor one = images.slice(0, 0, 1);
    at::Tensor box = boxes.slice(0, 0, 1);
    double seconds = 0;
    for (int64_t i = 0; i < o.warmup + o.infer_runs; ++i) {
      const auto t0 = Clock::now();
      at::Tensor logits = mod->forward(one, box);
      const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
      if (i >= o.warmup) seconds += dt;
    }
    out << "inference: " << seconds / o.infer_runs << " s per " << S << "x" << S << " patch" << std::endl;
  }
  out << "peak RSS: " << static_cast<double>(process_memory().peak) / (1 << 30) << " GiB" << std::endl;
  return 0;
}

}  // namespace nephroseg::bench
