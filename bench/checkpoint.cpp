// `nephroseg bench checkpoint`: time and peak memory of loading a full-size official-
// format checkpoint (SAM / MedSAM, DINOv2), relative to the file size (target: at
// most 1.5x in every precision; the loaders stream each tensor record into its own
// storage, the models adopt float32 storages, and a bf16 / int8 conversion frees each
// layer's float32 weight as it goes, so about 1x is expected).
//
// The file is written from a random model of the requested architecture
// (state_dict_of gives the reference keys in the reference order; torch.save's zip
// layout), flushed, and dropped from the page cache before every load, so each load
// reads the disk.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <iomanip>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "bench_util.h"
#include "models/dinov2/internal.h"
#include "models/sam/internal.h"
#include "nephroseg/bench/bench.h"
#include "nephroseg/checkpoint/pth.h"
#include "nephroseg/checkpoint/state_dict.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/memory.h"
#include "nephroseg/dinov2/dinov2.h"
#include "nephroseg/sam/sam.h"

namespace fs = std::filesystem;

namespace nephroseg::bench {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;

// The architecture named by --model: "sam_vit_b" | "sam_vit_l" | "sam_vit_h" |
// "medsam" | "dinov2_<preset>".
struct CheckpointModel {
  bool dinov2 = false;
  sam::SamConfig sam;
  dinov2::Dinov2Config dino;
};

CheckpointModel parse_model(const std::string& name) {
  CheckpointModel m;
  if (name.rfind("dinov2_", 0) == 0) {
    m.dinov2 = true;
    m.dino = dinov2::Dinov2Config::preset(name);
  } else if (name == "medsam") {
    m.sam = sam::SamConfig::medsam();
  } else if (name.rfind("sam_", 0) == 0 &&
             (name == "sam_vit_b" || name == "sam_vit_l" || name == "sam_vit_h")) {
    m.sam = sam::SamConfig::preset(name.substr(4));
  } else {
    NEPHRO_FAIL("bench checkpoint: unknown --model '", name,
                "' (expected sam_vit_b, sam_vit_l, sam_vit_h, medsam or dinov2_<preset>, e.g. "
                "dinov2_vitl14, dinov2_vitg14)");
  }
  return m;
}

// Writes the model's state dict as torch.save would; returns when it is on disk.
void write_checkpoint(const CheckpointModel& m, const std::string& path) {
  at::NoGradGuard no_grad;
  if (m.dinov2) {
    auto model = dinov2::Dinov2Model::random(m.dino, 0);
    checkpoint::save_state_dict(path, checkpoint::state_dict_of(dinov2::internal::module(*model)));
  } else {
    auto model = sam::SamModel::random(m.sam, 0);
    checkpoint::save_state_dict(path, checkpoint::state_dict_of(sam::internal::module(*model)));
  }
}

// Flushes the file and asks the kernel to drop its cached pages, so that the next
// read comes from the disk. Returns false where the kernel would not.
bool drop_page_cache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0 && ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0;
  ::close(fd);
  return ok;
}

struct LoadFigures {
  double seconds = 0;
  int64_t peak_above = 0;      // peak RSS during the load, above the baseline
  int64_t resident_above = 0;  // RSS once loaded (object alive), above the baseline
};

// Runs `load` (which returns an object holding the loaded weights) once, from a cold
// page cache, and measures it.
template <typename Load>
LoadFigures measure_load(const std::string& path, bool* cache_dropped, Load&& load) {
  release_free_memory();
  *cache_dropped = drop_page_cache(path) && *cache_dropped;
  const int64_t baseline = process_memory().rss;
  NEPHRO_CHECK(reset_peak_memory(), "cannot reset the peak-RSS counter (/proc/self/clear_refs)");
  LoadFigures f;
  const auto t0 = Clock::now();
  {
    auto held = load();
    f.seconds = since(t0);
    // Live memory only: freed blocks held by the tensor cache or malloc are returned
    // first (the peak above is unaffected).
    release_free_memory();
    f.resident_above = process_memory().rss - baseline;
  }
  f.peak_above = process_memory().peak - baseline;
  release_free_memory();
  return f;
}

// Removes the temporary checkpoint on every path out of run_checkpoint.
struct RemoveOnExit {
  std::string path;
  ~RemoveOnExit() {
    std::error_code ec;
    fs::remove(path, ec);
  }
};

}  // namespace

int run_checkpoint(const CheckpointBenchOptions& o, std::ostream& out) {
  const CheckpointModel m = parse_model(o.model);
  const std::vector<Precision> precisions =
      parse_precisions(o.precisions, o.precision, o.force_precision);
  std::error_code ec;
  NEPHRO_CHECK(fs::is_directory(o.dir, ec), "bench checkpoint: --dir '", o.dir,
               "' is not a folder");
  const std::string path =
      o.dir + "/nephroseg_bench_" + o.model + "_" + std::to_string(::getpid()) + ".pth";
  RemoveOnExit cleanup{path};

  const auto tw = Clock::now();
  write_checkpoint(m, path);
  const double write_s = since(tw);
  const double file_size = static_cast<double>(fs::file_size(path));

  bool cache_dropped = true;
  int64_t keys = 0, tensor_bytes = 0;
  const LoadFigures dict = measure_load(path, &cache_dropped, [&]() {
    auto sd = std::make_unique<checkpoint::StateDict>(checkpoint::load_state_dict(path));
    keys = static_cast<int64_t>(sd->size());
    tensor_bytes = sd->nbytes();
    return sd;
  });

  out << std::fixed << std::setprecision(1) << "checkpoint " << o.model << ": " << keys
      << " tensors, file " << file_size / kMiB << " MiB, tensors " << tensor_bytes / kMiB
      << " MiB (written from a random model in " << std::setprecision(2) << write_s << " s)\n";
  auto report = [&](const std::string& what, const LoadFigures& f) {
    out << std::left << std::setw(26) << what << std::right << std::setprecision(2)
        << std::setw(7) << f.seconds << " s, peak RSS above baseline " << std::setprecision(1)
        << std::setw(8) << f.peak_above / kMiB << " MiB = " << std::setprecision(2)
        << f.peak_above / file_size << "x the file size, resident after " << std::setprecision(1)
        << f.resident_above / kMiB << " MiB\n";
  };
  report("load_state_dict:", dict);
  double worst = dict.peak_above / file_size;
  for (Precision p : precisions) {
    const LoadFigures f = measure_load(path, &cache_dropped, [&]() -> std::shared_ptr<void> {
      if (m.dinov2) return dinov2::Dinov2Model::load(path, m.dino, p);
      return sam::SamModel::load(path, m.sam, p);
    });
    report(std::string(m.dinov2 ? "Dinov2Model::load " : "SamModel::load ") +
               precision_names().name(p) + ":",
           f);
    worst = std::max(worst, f.peak_above / file_size);
  }
  out << (cache_dropped ? "each load read the file from disk (page cache dropped before it)\n"
                        : "note: the page cache could not be dropped; loads read cached pages\n")
      << "target: peak RSS while loading <= 1.5x the file size in every precision (no "
         "second copy): worst "
      << std::setprecision(2) << worst << "x, " << (worst <= 1.5 ? "met" : "NOT met") << "\n";
  return worst <= 1.5 ? 0 : 3;
}

}  // namespace nephroseg::bench
