// `nephroseg bench checkpoint`: peak memory of loading a full-size checkpoint,
// relative to the file size (target: at most 1.5x).
#include <ATen/ATen.h>
#include <unistd.h>

#include <filesystem>
#include <iomanip>
#include <ostream>

#include "bench_util.h"
#include "nephroseg/bench/bench.h"
#include "nephroseg/checkpoint/pth.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/memory.h"

namespace fs = std::filesystem;

namespace nephroseg::bench {
namespace {

// A state dict with SAM vit_b's tensor shapes (93.7 M float32 parameters).
checkpoint::StateDict vit_b_shaped_state_dict() {
  checkpoint::StateDict sd;
  const int64_t c = 768, hd = 64;
  auto add = [&](const std::string& k, std::vector<int64_t> shape) {
    sd.insert(k, at::randn(shape));
  };
  add("image_encoder.pos_embed", {1, 64, 64, c});
  add("image_encoder.patch_embed.proj.weight", {c, 3, 16, 16});
  add("image_encoder.patch_embed.proj.bias", {c});
  for (int i = 0; i < 12; ++i) {
    const std::string b = "image_encoder.blocks." + std::to_string(i) + ".";
    const bool global = (i % 3 == 2);
    add(b + "norm1.weight", {c});
    add(b + "norm1.bias", {c});
    add(b + "attn.rel_pos_h", {global ? 127 : 27, hd});
    add(b + "attn.rel_pos_w", {global ? 127 : 27, hd});
    add(b + "attn.qkv.weight", {3 * c, c});
    add(b + "attn.qkv.bias", {3 * c});
    add(b + "attn.proj.weight", {c, c});
    add(b + "attn.proj.bias", {c});
    add(b + "norm2.weight", {c});
    add(b + "norm2.bias", {c});
    add(b + "mlp.lin1.weight", {4 * c, c});
    add(b + "mlp.lin1.bias", {4 * c});
    add(b + "mlp.lin2.weight", {c, 4 * c});
    add(b + "mlp.lin2.bias", {c});
  }
  add("image_encoder.neck.0.weight", {256, c, 1, 1});
  add("image_encoder.neck.1.weight", {256});
  add("image_encoder.neck.1.bias", {256});
  add("image_encoder.neck.2.weight", {256, 256, 3, 3});
  add("image_encoder.neck.3.weight", {256});
  add("image_encoder.neck.3.bias", {256});
  // Prompt encoder and mask decoder: ~4 M parameters, as one block of the same size.
  add("mask_decoder.transformer.bulk", {4058, 1000});
  return sd;
}

}  // namespace

int run_checkpoint(const CheckpointBenchOptions& o, std::ostream& out) {
  const std::string path = o.dir + "/nephroseg_bench_vit_b_" + std::to_string(::getpid()) + ".pth";
  {
    checkpoint::StateDict sd = vit_b_shaped_state_dict();
    checkpoint::save_state_dict(path, sd);
  }
  // The tuned allocator keeps the freed state dict resident; give it back so the
  // load below cannot reuse those pages unseen.
  release_free_memory();
  const int64_t file_size = static_cast<int64_t>(fs::file_size(path));
  const int64_t rss_before = process_memory().rss;
  NEPHRO_CHECK(reset_peak_memory(), "cannot reset the peak-RSS counter (/proc/self/clear_refs)");
  const auto t0 = std::chrono::steady_clock::now();
  int64_t tensor_bytes = 0;
  size_t keys = 0;
  {
    checkpoint::StateDict loaded = checkpoint::load_state_dict(path);
    tensor_bytes = loaded.nbytes();
    keys = loaded.size();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int64_t peak = process_memory().peak;
  fs::remove(path);
  const double mib = 1024.0 * 1024.0;
  const double ratio = static_cast<double>(peak - rss_before) / static_cast<double>(file_size);
  out << std::fixed << std::setprecision(1)
      << "checkpoint: " << keys << " tensors, file " << file_size / mib << " MiB, tensors "
      << tensor_bytes / mib << " MiB\n"
      << "load time:  " << std::setprecision(2) << seconds << " s\n"
      << std::setprecision(1) << "peak RSS above baseline while loading: "
      << (peak - rss_before) / mib << " MiB = " << std::setprecision(2) << ratio
      << "x the file size (target <= 1.5x)\n";
  return ratio <= 1.5 ? 0 : 3;
}

}  // namespace nephroseg::bench
