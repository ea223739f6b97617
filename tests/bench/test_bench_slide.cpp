// bench/slide.cpp (`nephroseg bench slide`): the benchmark's own machinery.
#include <gtest/gtest.h>

#include <string>

#include "nephroseg/bench/slide.h"
#include "support/golden.h"

namespace t = nephroseg::test;

namespace {

// The bench's own machinery at a small size (a functional check, not a measurement):
// its synthetic slide holds exactly the glomeruli it reports, and the forked run
// finds them all. ctest runs every TEST in a process of its own, so nothing has
// started worker threads before the fork.
TEST(SlideBench, SyntheticSlideRoundTripsThroughTheForkedRun) {
  const std::string dir = t::temp_dir("slide_bench");
  const auto rows = nephroseg::bench::bench_slide(dir, {8000});
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_GT(rows[0].expected_objects, 10);
  EXPECT_EQ(rows[0].objects, rows[0].expected_objects);
  EXPECT_GT(rows[0].peak_rss_mib, 10.0);
  EXPECT_GT(rows[0].tissue_megapixels, 10.0);
  EXPECT_GT(rows[0].tiles, 0);
}

}  // namespace
