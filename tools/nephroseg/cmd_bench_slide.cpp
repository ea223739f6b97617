// `nephroseg bench slide`: peak RSS and time of whole-slide runs against slide size
// (floor: at most 2.5 GiB with the classical detector, and the largest slide within
// 10 % of the smallest).
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "command.h"
#include "nephroseg/core/atomic_file.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/bench/slide.h"

namespace fs = std::filesystem;

namespace nephroseg::cli {
namespace {

struct BenchSlideParams {
  std::string work = "bench_slide";
  std::vector<int> sides{10000, 40000};
  bool keep = false;
};

int run_bench_slide(BenchSlideParams& p) {
  NEPHRO_CHECK(!p.sides.empty(), "--sides needs at least one size");
  const auto rows = bench::bench_slide(p.work, p.sides);
  std::printf("%8s %12s %9s %12s %12s %7s %9s\n", "side", "peak RSS MiB", "wall s", "tissue MP", "s / tissue MP",
              "tiles", "objects");
  nlohmann::ordered_json j = nlohmann::ordered_json::array();
  for (const auto& r : rows) {
    std::printf("%8d %12.1f %9.1f %12.1f %12.3f %7d %4d/%-4d\n", r.side, r.peak_rss_mib, r.wall_s, r.tissue_megapixels,
                r.s_per_tissue_mp, r.tiles, r.objects, r.expected_objects);
    j.push_back({{"side", r.side}, {"peak_rss_mib", r.peak_rss_mib}, {"wall_s", r.wall_s},
                 {"tissue_megapixels", r.tissue_megapixels}, {"s_per_tissue_megapixel", r.s_per_tissue_mp},
                 {"tiles", r.tiles}, {"objects", r.objects}, {"expected_objects", r.expected_objects}});
  }
  const double smallest = rows.front().peak_rss_mib, largest = rows.back().peak_rss_mib;
  const bool floor_abs = largest <= 2.5 * 1024, floor_rel = largest <= 1.10 * smallest;
  std::printf("peak RSS %.1f MiB (floor 2560 MiB: %s); largest / smallest %.3f (floor 1.10: %s)\n", largest,
              floor_abs ? "met" : "MISSED", largest / smallest, floor_rel ? "met" : "MISSED");
  write_file_atomically((fs::path(p.work) / "bench_slide.json").string(), j.dump(2) + "\n");
  if (!p.keep)
    for (const auto& r : rows) fs::remove((fs::path(p.work) / ("synthetic_" + std::to_string(r.side) + ".ome.tif")));
  return floor_abs && floor_rel ? 0 : 1;
}

Runner setup_bench_slide(CLI::App& app) {
  auto p = std::make_shared<BenchSlideParams>();
  app.add_option("--work", p->work, "folder for the synthetic slides and outputs")->capture_default_str();
  app.add_option("--sides", p->sides, "slide sides in pixels (smallest first)")->capture_default_str();
  app.add_flag("--keep", p->keep, "keep the synthetic slides");
  return [p] { return run_bench_slide(*p); };
}

}  // namespace

NEPHRO_COMMAND("bench", "slide", "whole-slide peak memory and time against slide size (synthetic slides)",
               setup_bench_slide);

}  // namespace nephroseg::cli
