// Thickness estimators against phantoms of known thickness.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <opencv2/imgproc.hpp>

#include "nephroseg/core/error.h"
#include "nephroseg/measure/phantom.h"
#include "nephroseg/measure/thickness.h"

using namespace nephroseg;
using namespace nephroseg::measure;

namespace {

struct Setting {
  const char* name;
  PhantomShape shape;
  double thickness;
  double orientation;  // < 0 random
  double min_radius;   // 0 auto
  uint64_t seed;
};

void check_setting(const Setting& s) {
  PhantomOptions po;
  po.seed = s.seed;
  po.size = 384;
  po.thickness_px = s.thickness;
  po.shape = s.shape;
  po.orientation_deg = s.orientation;
  po.min_radius_px = s.min_radius;
  po.num_membranes = 2;
  const Phantom ph = generate_phantom(po);
  ThicknessOptions to;
  to.nm_per_pixel = ph.nm_per_pixel;
  const ThicknessResult r = measure_thickness(ph.mask, to);
  const double t = ph.true_thickness_px;
  const double e_hm = r.oi.harmonic_mean / t - 1, e_am = r.oi.mean / t - 1;
  const double e_dm = r.direct.mean / t - 1, e_dmed = r.direct.median / t - 1;
  std::printf("[ setting ] %-28s t=%5.1f  OI n=%4d excl=%3d HM %+6.2f%% AM %+6.2f%% | direct n=%5d excl=%4d mean %+6.2f%% median %+6.2f%%\n",
              s.name, t, r.oi.n, r.oi.n_excluded, 100 * e_hm, 100 * e_am, r.direct.n, r.direct.n_excluded,
              100 * e_dm, 100 * e_dmed);
  EXPECT_GT(r.oi.n, 30) << s.name;
  EXPECT_GT(r.direct.n, 30) << s.name;
  EXPECT_LT(std::abs(e_hm), 0.03) << s.name << ": OI harmonic mean " << r.oi.harmonic_mean << " vs " << t;
  EXPECT_LT(std::abs(e_am), 0.03) << s.name << ": OI arithmetic mean " << r.oi.mean << " vs " << t;
  EXPECT_LT(std::abs(e_dm), 0.03) << s.name << ": direct mean " << r.direct.mean << " vs " << t;
  EXPECT_LT(std::abs(e_dmed), 0.03) << s.name << ": direct median " << r.direct.median << " vs " << t;
  // The stereological value is the 2-D harmonic mean times 8/(3 pi), by definition.
  EXPECT_NEAR(r.oi_stereological_harmonic_px, r.oi.harmonic_mean * 8.0 / (3.0 * M_PI), 1e-9);
}

}  // namespace

TEST(Thickness, EstimatorsWithinThreePercentOfTruth) {
  const Setting settings[] = {
      {"straight 0deg t10", PhantomShape::kStraight, 10, 0, 0, 1},
      {"straight 30deg t10", PhantomShape::kStraight, 10, 30, 0, 2},
      {"straight 41deg t16", PhantomShape::kStraight, 16, 41, 0, 3},
      {"straight 77deg t24", PhantomShape::kStraight, 24, 77, 0, 4},
      {"arc R=4t t12", PhantomShape::kArc, 12, -1, 48, 5},
      {"arc R=2.5t t20", PhantomShape::kArc, 20, -1, 50, 6},
      {"wave t10", PhantomShape::kWave, 10, 20, 0, 7},
      {"wave t18", PhantomShape::kWave, 18, 110, 0, 8},
      {"loop t14", PhantomShape::kLoop, 14, -1, 0, 9},
      {"loop t24", PhantomShape::kLoop, 24, -1, 0, 10},
  };
  for (const auto& s : settings) check_setting(s);
}
