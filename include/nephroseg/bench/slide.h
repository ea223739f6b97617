// nephroseg/bench/slide.h: the `bench slide` measurement: peak memory and time of a
// whole-slide run against slide size.
//
// For each side S (default 10,000 and 40,000 px) a synthetic slide is written (8-bit,
// 1 channel, tiled OME-TIFF with a SubIFD pyramid, 0.5 µm/px; sparse tissue: discs of
// 1.5 mm radius, about one per 270 megapixels, each holding a grid of 150 px-radius
// glomeruli), then run_slide() with the classical detector runs on it. Each write and
// each run happens in a forked child so that its peak RSS (wait4 ru_maxrss) is its own.
// Not thread-safe with other work in the calling process (it forks); call it from a
// process that has not started worker threads.
#pragma once

#include <string>
#include <vector>

namespace nephroseg::bench {

struct SlideBenchRow {
  int side = 0;
  double peak_rss_mib = 0;      ///< of the run_slide child
  double wall_s = 0;            ///< of run_slide
  double tissue_megapixels = 0; ///< tissue area in level-0 megapixels (from the run)
  double s_per_tissue_mp = 0;
  int tiles = 0, objects = 0;
  int expected_objects = 0;     ///< glomeruli drawn into the slide
};

/// Writes the synthetic slide of side `side` to `path` (tile by tile; bounded memory).
/// Returns the number of glomeruli drawn.
int write_bench_slide(const std::string& path, int side);

/// Runs the measurement in `work_dir` (slides and outputs are written there).
std::vector<SlideBenchRow> bench_slide(const std::string& work_dir, const std::vector<int>& sides = {10000, 40000});

}  // namespace nephroseg::bench
