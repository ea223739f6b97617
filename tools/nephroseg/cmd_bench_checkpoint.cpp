// `nephroseg bench checkpoint`: peak memory of loading a full-size checkpoint,
// relative to the file size (target: at most 1.5x).
#include <ATen/ATen.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>

#include "command.h"
#include "nephroseg/checkpoint/pth.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/memory.h"

namespace fs = std::filesystem;

namespace nephroseg::cli {
namespace {

// Resident set size and its peak (VmRSS, VmHWM) in bytes.
std::pair<int64_t, int64_t> rss_and_peak() {
  std::ifstream in("/proc/self/status");
  std::string line;
  int64_t rss = 0, hwm = 0;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) rss = std::stoll(line.substr(6)) * 1024;
    if (line.rfind("VmHWM:", 0) == 0) hwm = std::stoll(line.substr(6)) * 1024;
  }
  return {rss, hwm};
}

bool reset_peak() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.close();
  return out.good();
}

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

Runner setup(CLI::App& app) {
  auto dir = std::make_shared<std::string>(fs::temp_directory_path().string());
  app.add_option("--dir", *dir, "folder for the temporary checkpoint file")->capture_default_str();
  return [dir]() {
    const std::string path = *dir + "/nephroseg_bench_vit_b_" + std::to_string(::getpid()) + ".pth";
    {
      checkpoint::StateDict sd = vit_b_shaped_state_dict();
      checkpoint::save_state_dict(path, sd);
    }
    // The tuned allocator keeps the freed state dict resident; give it back so the
    // load below cannot reuse those pages unseen.
    release_free_memory();
    const int64_t file_size = static_cast<int64_t>(fs::file_size(path));
    const auto [rss_before, hwm_ignored] = rss_and_peak();
    NEPHRO_CHECK(reset_peak(), "cannot reset the peak-RSS counter (/proc/self/clear_refs)");
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
    const auto [rss_after, peak] = rss_and_peak();
    fs::remove(path);
    const double mib = 1024.0 * 1024.0;
    const double ratio = static_cast<double>(peak - rss_before) / static_cast<double>(file_size);
    std::cout << std::fixed << std::setprecision(1)
              << "checkpoint: " << keys << " tensors, file " << file_size / mib << " MiB, tensors "
              << tensor_bytes / mib << " MiB\n"
              << "load time:  " << std::setprecision(2) << seconds << " s\n"
              << std::setprecision(1) << "peak RSS above baseline while loading: "
              << (peak - rss_before) / mib << " MiB = " << std::setprecision(2) << ratio
              << "x the file size (target <= 1.5x)\n";
    return ratio <= 1.5 ? 0 : 3;
  };
}

NEPHRO_COMMAND("bench", "checkpoint",
               "peak memory of loading a full-size (SAM vit_b-sized) checkpoint", setup);

}  // namespace
}  // namespace nephroseg::cli
