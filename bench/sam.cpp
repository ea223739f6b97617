// `nephroseg bench sam`: SAM image-encoder and decoder timings with random weights,
// the encoder's achieved GFLOP/s (analytic FLOP count) and the ratio to an sgemm
// peak measured in the same run.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <memory>
#include <ostream>
#include <vector>

#include "bench_util.h"
#include "models/sam/internal.h"
#include "nephroseg/bench/bench.h"
#include "nephroseg/core/error.h"
#include "nephroseg/sam/sam.h"
#include "nephroseg/core/precision.h"

namespace nephroseg::bench {
namespace {

// Multiply-adds of the encoder as executed (windowed blocks run on the padded grid):
// every conv and matmul, attention QK^T and AV, and both rel-pos einsums.
struct EncoderMacs {
  double patch_embed = 0, global_blocks = 0, window_blocks = 0, neck = 0;
  double total() const { return patch_embed + global_blocks + window_blocks + neck; }
};

EncoderMacs encoder_macs(const sam::SamConfig& c) {
  EncoderMacs m;
  const double g = static_cast<double>(c.grid_size());
  const double C = static_cast<double>(c.encoder_embed_dim);
  const double hidden = std::floor(C * c.mlp_ratio);
  const double tokens = g * g;
  m.patch_embed = tokens * C * 3.0 * c.patch_size * c.patch_size;
  for (int64_t i = 0; i < c.encoder_depth; ++i) {
    const bool global = std::find(c.encoder_global_attn_indexes.begin(),
                                  c.encoder_global_attn_indexes.end(),
                                  i) != c.encoder_global_attn_indexes.end();
    const double side = global || c.window_size == 0 ? g : static_cast<double>(c.window_size);
    const double padded = global || c.window_size == 0
                              ? g
                              : std::ceil(g / c.window_size) * c.window_size;
    const double t = padded * padded;            // tokens through attention
    const double win = side * side;              // tokens per attention window
    double macs = t * C * 3 * C + t * C * C;     // qkv, proj
    macs += 2 * t * win * C;                     // QK^T and AV over all heads
    if (c.use_rel_pos) macs += 2 * t * side * C;  // rel_h and rel_w einsums
    macs += 2 * tokens * C * hidden;             // MLP lin1 + lin2
    (global ? m.global_blocks : m.window_blocks) += macs;
  }
  const double out = static_cast<double>(c.prompt_embed_dim);
  m.neck = tokens * C * out + tokens * out * out * 9;
  return m;
}

}  // namespace

int run_sam(const SamBenchOptions& o, std::ostream& out) {
  NEPHRO_CHECK(o.runs >= 1 && o.decoder_runs >= 1 && o.warmup >= 0,
               "--runs and --decoder-runs must be >= 1, --warmup >= 0");
  const std::vector<Precision> precisions =
      parse_precisions(o.precisions, o.precision, o.force_precision);
  const sam::SamConfig cfg = sam::SamConfig::preset(o.model_type);
  out << std::fixed << std::setprecision(3);
  out << "SAM " << cfg.name << " (random weights), input 1x3x" << cfg.img_size << "x"
      << cfg.img_size << ", threads " << at::get_num_threads() << ", precisions";
  for (Precision p : precisions) out << " " << precision_names().name(p);
  out << std::endl;
  GemmPeaks peaks = measure_gemm_peaks(precisions, out);

  const at::Tensor x = at::randn({1, 3, cfg.img_size, cfg.img_size});
  const EncoderMacs macs = encoder_macs(cfg);
  const double flops = 2.0 * macs.total();
  std::shared_ptr<sam::SamModel> model;
  at::Tensor emb;
  struct Row {
    Precision p;
    double seconds;
  };
  std::vector<Row> rows;
  // All models first, then interleaved rounds (warm-up rounds untimed): on a shared
  // machine every precision sees the same background load.
  std::vector<std::shared_ptr<sam::SamModel>> models;
  for (Precision p : precisions) models.push_back(sam::SamModel::random(cfg, 0, p));
  std::vector<std::vector<double>> times(precisions.size());
  {
    c10::InferenceMode guard;
    for (int64_t round = 0; round < o.warmup + o.runs; ++round) {
      for (size_t k = 0; k < precisions.size(); ++k) {
        sam::SamImpl& net = sam::internal::module(*models[k]);
        const auto t0 = Clock::now();
        emb = net.image_encoder->forward(x);
        if (round >= o.warmup) times[k].push_back(since(t0));
      }
    }
  }
  model = models.front();
  out << "peaks again after the timed runs (the larger of the two is used):" << std::endl;
  peaks = peaks.max_with(measure_gemm_peaks(precisions, out));
  const double peak = peaks.fp32;
  for (size_t k = 0; k < precisions.size(); ++k) {
    const Precision p = precisions[k];
    const std::vector<double>& enc = times[k];
    const double enc_s = median(enc);
    const double achieved = flops / enc_s / 1e9;
    const double p_peak = peaks.of(p);
    out << "image encoder " << precision_names().name(p) << ": median " << enc_s << " s of " << o.runs
        << " (min " << *std::min_element(enc.begin(), enc.end()) << ", max "
        << *std::max_element(enc.begin(), enc.end()) << "), " << std::setprecision(1) << flops / 1e9
        << " GFLOP -> " << achieved << " GFLOP/s = " << 100.0 * achieved / p_peak << "% of "
        << gemm_name(p) << " peak";
    if (p == Precision::kFp32) {
      out << " (floor 55%: " << (achieved >= 0.55 * peak ? "met" : "NOT met") << ")";
    }
    out << std::setprecision(3) << std::endl;
    rows.push_back({p, enc_s});
  }
  models.clear();
  if (rows.size() > 1) {
    const auto fp32 = std::find_if(rows.begin(), rows.end(),
                                   [](const Row& r) { return r.p == Precision::kFp32; });
    out << "precision  encoder_s  speedup_vs_fp32  gflops  pct_of_own_gemm_peak" << std::endl;
    for (const Row& r : rows) {
      const double achieved = flops / r.seconds / 1e9;
      out << std::left << std::setw(11) << precision_names().name(r.p) << std::right
          << std::setw(9) << r.seconds << "  " << std::setw(15)
          << (fp32 != rows.end() ? fp32->seconds / r.seconds : std::nan("")) << "  "
          << std::setprecision(1) << std::setw(6) << achieved << "  " << std::setw(20)
          << 100.0 * achieved / peaks.of(r.p) << std::setprecision(3) << std::endl;
    }
  }
  // Breakdown and decoder timings: the first precision's model.
  sam::SamImpl& net = sam::internal::module(*model);
  c10::InferenceMode guard;
  emb = net.image_encoder->forward(x).to(at::kFloat);

  if (o.breakdown) {
    at::Tensor h = net.image_encoder->patch_embed->forward(x) + net.image_encoder->pos_embed;
    double t_global = 0, t_window = 0;
    int64_t i = 0;
    for (const auto& blk : *net.image_encoder->blocks) {
      auto* block = blk->as<sam::BlockImpl>();
      const auto t0 = Clock::now();
      h = block->forward(h);
      const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
      (block->window_size == 0 ? t_global : t_window) += dt;
      out << "  block " << i++ << (block->window_size == 0 ? " (global)  " : " (windowed)")
          << ": " << dt << " s" << std::endl;
    }
    out << "  global blocks " << t_global << " s (" << std::setprecision(1)
        << 2 * macs.global_blocks / t_global / 1e9 << " GFLOP/s), windowed blocks "
        << std::setprecision(3) << t_window << " s (" << std::setprecision(1)
        << 2 * macs.window_blocks / t_window / 1e9 << " GFLOP/s)" << std::setprecision(3)
        << std::endl;
  }

  // Prompt encoder + mask decoder: one point, multimask (batch 1).
  const bool medsam = cfg.preprocess == sam::SamPreprocess::kMedSam;
  const at::Tensor coords = at::tensor({cfg.img_size / 2.f, cfg.img_size / 3.f}).view({1, 1, 2});
  const at::Tensor labels = at::ones({1, 1}, at::kInt);
  const at::Tensor box = at::tensor({100.f, 100.f, 500.f, 600.f}).view({1, 4});
  const std::array<int64_t, 2> full{cfg.img_size, cfg.img_size};
  const std::vector<double> dec = time_runs(1, o.decoder_runs, [&] {
    auto sparse_dense = medsam ? net.prompt_encoder->forward({}, {}, box, {})
                               : net.prompt_encoder->forward(coords, labels, {}, {});
    net.mask_decoder->forward(emb, net.prompt_encoder->get_dense_pe(), sparse_dense.first,
                              sparse_dense.second, /*multimask_output=*/!medsam);
  });
  out << "prompt encoder + mask decoder (" << (medsam ? "box" : "1 point, multimask")
      << "): median " << median(dec) << " s of " << o.decoder_runs << std::endl;
  const std::vector<double> pred = time_runs(1, o.decoder_runs, [&] {
    sam::decode(net, emb, medsam ? at::Tensor() : coords, medsam ? at::Tensor() : labels,
                medsam ? box : at::Tensor(), {}, !medsam, full, full);
  });
  out << "predict incl. postprocess to " << cfg.img_size << "x" << cfg.img_size
      << ": median " << median(pred) << " s" << std::endl;
  out << "reference (Python, spec section 5): encoder ~19 s, decoder 0.084-0.132 s, "
         "predict 0.093-0.140 s"
      << std::endl;
  return 0;
}

}  // namespace nephroseg::bench
