// nephroseg/bench/bench.h: the benchmarks behind `nephroseg bench sam|gbmseg|glomsam|
// checkpoint|serve` (bench/*.cpp, library nephroseg_bench). Each one builds random-weight
// models or synthetic files, times them and writes its report lines to `out`; the CLI
// passes std::cout. They return the command's exit code (0, or 3 when a checked
// target is missed, as `bench checkpoint` does).
//
//   nephroseg::bench::SamBenchOptions o;
//   o.model_type = "vit_l";
//   return nephroseg::bench::run_sam(o, std::cout);
//
// Timings are meaningful only on an otherwise idle machine. Not thread-safe (each
// run times the whole process and reads its peak memory).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "nephroseg/core/precision.h"

namespace nephroseg::bench {

/// SAM image encoder and decoder timings, the encoder's GFLOP/s (analytic count)
/// and its ratio to an sgemm peak measured in the same run.
struct SamBenchOptions {
  int64_t runs = 3;           ///< timed encoder runs (median reported, >= 1)
  int64_t warmup = 1;         ///< untimed warm-up runs (>= 0)
  int64_t decoder_runs = 10;  ///< timed decoder runs (>= 1)
  std::string model_type = "vit_b";  ///< vit_b | vit_l | vit_h | medsam
  bool breakdown = false;     ///< also time each encoder block once
  /// Encoder precisions timed in the same run, e.g. "fp32,bf16,int8" (each with its
  /// time, ratio to fp32 and fraction of that precision's GEMM peak); "" = `precision`.
  std::string precisions;
  Precision precision = Precision::kFp32;  ///< the global --precision
  bool force_precision = false;            ///< --force-precision
};
int run_sam(const SamBenchOptions& options, std::ostream& out);

/// GBMSeg batch pipeline per target against the authors' per-target schedule.
struct GbmsegBenchOptions {
  std::string dinov2_type = "vitl14";
  std::string sam_type = "vit_l";
  int targets = 2;
  int size = 560;             ///< working size S (multiple of 14)
  bool skip_authors = false;  ///< time the batch pipeline only
  uint64_t seed = 0;          ///< weights/images seed
  /// Precisions timed in the same run ("fp32,bf16,int8"): per precision the DINOv2
  /// forward at S (time, ratio to fp32, fraction of that precision's GEMM peak) and
  /// the batch pipeline's per-target time; the authors' schedule runs in the first.
  /// "" = `precision`.
  std::string precisions;
  Precision precision = Precision::kFp32;
  bool force_precision = false;
  /// "" = synthetic images; else a folder laid out as shared/data/gbmseg_sample
  /// (reference_image/, reference_mask/, target_image/; the first file of each
  /// reference folder, the target files cycled to `targets`).
  std::string sample_dir;
};
/// With two or more precisions and fp32 among them, also prints each precision's
/// agreement with fp32 per target: final prompt points unchanged (intersection over
/// union of the (x, y, label) sets) and the mask Dice.
int run_gbmseg(const GbmsegBenchOptions& options, std::ostream& out);

/// GlomSAM training img/s, inference s/patch and the process's peak memory.
struct GlomsamBenchOptions {
  std::string config = "official";  ///< official | tiny | JSON file
  int64_t batch_size = 1;
  int64_t train_steps = 2;  ///< 0 = skip
  int64_t infer_runs = 2;   ///< 0 = skip
  int64_t warmup = 1;
};
int run_glomsam(const GlomsamBenchOptions& options, std::ostream& out);

/// Time and peak memory of loading a full-size official-format checkpoint written to
/// `dir` (from a random model of `model`), read from disk: the state dict alone, then
/// the model's load in each precision. Peak RSS is reported relative to the file
/// size; returns 3 when a load in any precision peaks above the 1.5x target.
struct CheckpointBenchOptions {
  std::string dir;                ///< folder for the temporary checkpoint file
  std::string model = "sam_vit_b";  ///< sam_vit_b|sam_vit_l|sam_vit_h|medsam|dinov2_<preset>
  std::string precisions;         ///< "fp32,bf16,int8"; "" = the global --precision
  Precision precision = Precision::kFp32;
  bool force_precision = false;
};
int run_checkpoint(const CheckpointBenchOptions& options, std::ostream& out);

/// `nephroseg serve` as QuPath uses it, against the SAM library in the same process:
/// a random-weight SAM saved as an official-format .pth in a temporary folder, an
/// in-process serve::Server on 127.0.0.1 (any free port) and an HTTP client sending
/// samapi JSON bodies (base64 PNG of a synthetic image_size x image_size view).
/// Medians over `runs` rounds (after one untimed warm-up round that also loads the
/// server's model): (a) the first click on a new view (cache miss: decode, encoder,
/// decoder, polygons, JSON), (b) three more clicks on that view (cache hits), and, in
/// the same rounds, the library's encoder forward and predict as `bench sam` times
/// them; then (c) one automask request against the library's generate_masks on the
/// same embedding. Prints both columns, their ratios and the floors (cached click <=
/// 1.3 x predict + 30 ms, new-view click <= 1.15 x encoder + 100 ms) as met / NOT met.
/// Returns 0 (timings are reported, not enforced: the machine may be loaded). The
/// temporary folder is removed and the server stopped on every path.
struct ServeBenchOptions {
  int64_t runs = 3;                  ///< timed rounds (median reported, >= 1)
  std::string model_type = "vit_b";  ///< vit_b | vit_l | vit_h | medsam
  std::string model_config;          ///< SamConfig JSON (wins over model_type), e.g.
                                     ///< a tiny model for smoke runs
  int points_per_side = 32;          ///< automask grid (1..256; 0 skips automask)
  int image_size = 1024;             ///< side of the square views sent (32..4096)
  std::string dir;                   ///< parent of the temporary folder ("" = system temp)
  Precision precision = Precision::kFp32;  ///< the global --precision (resolved)
};
int run_serve(const ServeBenchOptions& options, std::ostream& out);

}  // namespace nephroseg::bench
