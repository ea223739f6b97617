// Thickness estimators against phantoms of known thickness.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <functional>
#include <thread>
#include <opencv2/imgproc.hpp>
#include <sys/wait.h>
#include <unistd.h>

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

TEST(Thickness, TouchingAndBranchingBandsAreExcludedNotAveraged) {
  for (uint64_t seed : {13, 14, 15, 16, 17, 18, 19, 20}) {
    PhantomOptions po;
    po.seed = seed;
    po.size = 384;
    po.thickness_px = 16;
    po.num_membranes = 2;
    po.touching = true;
    po.branching = true;
    const Phantom ph = generate_phantom(po);
    EXPECT_GE(ph.contact_points.size(), 1u) << "seed " << seed;
    ThicknessOptions to;
    to.nm_per_pixel = 2.0;
    const ThicknessResult r = measure_thickness(ph.mask, to);
    const double t = ph.true_thickness_px;
    std::printf("[ contact ] seed %2d t=%.0f  OI HM %+6.2f%% (excl %d) | direct mean %+6.2f%% (excl %d)\n",
                static_cast<int>(seed), t, 100 * (r.oi.harmonic_mean / t - 1), r.oi.n_excluded,
                100 * (r.direct.mean / t - 1), r.direct.n_excluded);
    EXPECT_GT(r.oi.n_excluded + r.direct.n_excluded, 0);
    EXPECT_LT(std::abs(r.oi.harmonic_mean / t - 1), 0.03) << "seed " << seed;
    EXPECT_LT(std::abs(r.direct.mean / t - 1), 0.03) << "seed " << seed;
  }
}

TEST(Thickness, CalibrationScalesNanometres) {
  PhantomOptions po;
  po.seed = 21;
  po.size = 256;
  po.thickness_px = 12;
  po.shape = PhantomShape::kWave;
  const Phantom ph = generate_phantom(po);
  ThicknessOptions a, b;
  a.nm_per_pixel = 1.0;
  b.nm_per_pixel = 27.5;
  const auto ra = measure_thickness(ph.mask, a), rb = measure_thickness(ph.mask, b);
  EXPECT_DOUBLE_EQ(ra.oi.harmonic_mean, rb.oi.harmonic_mean);  // pixels do not change
  EXPECT_DOUBLE_EQ(rb.nm_per_pixel, 27.5);
}

TEST(Thickness, BadInputIsRefused) {
  cv::Mat empty_mask = cv::Mat::zeros(50, 50, CV_8U);
  ThicknessOptions o;
  o.nm_per_pixel = 2;
  EXPECT_THROW(measure_thickness(empty_mask, o), Error);
  cv::Mat m = empty_mask.clone();
  cv::rectangle(m, cv::Rect(10, 10, 30, 8), cv::Scalar(255), cv::FILLED);
  ThicknessOptions no_cal;
  EXPECT_THROW(measure_thickness(m, no_cal), Error);
  no_cal.nm_per_pixel = -1;
  EXPECT_THROW(measure_thickness(m, no_cal), Error);
  EXPECT_THROW(measure_thickness(cv::Mat(), o), Error);
  PhantomOptions po;
  po.thickness_px = 1;
  EXPECT_THROW(generate_phantom(po), Error);
  EXPECT_THROW(parse_phantom_shape("blob"), Error);
}

TEST(Thickness, SkeletonIsThinAndConnected) {
  cv::Mat m = cv::Mat::zeros(60, 90, CV_8U);
  cv::rectangle(m, cv::Rect(5, 20, 80, 15), cv::Scalar(255), cv::FILLED);
  cv::Mat s = skeletonize(m);
  EXPECT_GT(cv::countNonZero(s), 55);
  EXPECT_LT(cv::countNonZero(s), 90);
  cv::Mat labels;
  EXPECT_EQ(cv::connectedComponents(s, labels, 8), 2);  // background + one skeleton
  // No 2x2 block of skeleton pixels.
  for (int y = 0; y + 1 < s.rows; ++y)
    for (int x = 0; x + 1 < s.cols; ++x)
      EXPECT_FALSE(s.at<uint8_t>(y, x) && s.at<uint8_t>(y + 1, x) && s.at<uint8_t>(y, x + 1) &&
                   s.at<uint8_t>(y + 1, x + 1));
}

TEST(Phantom, DeterministicAndWellFormed) {
  PhantomOptions po;
  po.seed = 5;
  po.size = 200;
  po.thickness_px = 10;
  const Phantom a = generate_phantom(po), b = generate_phantom(po);
  EXPECT_EQ(cv::countNonZero(a.image != b.image), 0);
  EXPECT_EQ(cv::countNonZero(a.mask != b.mask), 0);
  po.seed = 6;
  const Phantom c = generate_phantom(po);
  EXPECT_GT(cv::countNonZero(a.mask != c.mask), 0);
  EXPECT_EQ(a.image.type(), CV_8UC1);
  EXPECT_EQ(a.mask.type(), CV_8UC1);
  double lo, hi;
  cv::minMaxLoc(a.mask, &lo, &hi);
  EXPECT_EQ(lo, 0);
  EXPECT_EQ(hi, 255);
  EXPECT_EQ(cv::countNonZero(a.mask != 0) , cv::countNonZero(a.mask == 255));
  EXPECT_DOUBLE_EQ(a.true_thickness_nm(), 10 * po.nm_per_pixel);
  // The membrane is darker than the background on average.
  EXPECT_LT(cv::mean(a.image, a.mask)[0] + 20, cv::mean(a.image, a.mask == 0)[0]);
}

namespace {

// Runs fn in a child process and returns its exit status, or -1 when it is still
// running after limit_s seconds (the child is then killed): a hang fails the test
// instead of stalling the suite.
int exit_status_within(double limit_s, const std::function<int()>& fn) {
  const pid_t pid = fork();
  if (pid == 0) _exit(fn());
  const auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < limit_s) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

}  // namespace

TEST(Thickness, MaskWithoutBackgroundIsAClearErrorNotAHang) {
  // Regression: a 64 x 64 all-foreground mask looped forever in the boundary's
  // nearest-point search (the distance transform has no background to measure to).
  for (int size : {64, 300}) {
    const int status = exit_status_within(20.0, [size] {
      ThicknessOptions o;
      o.nm_per_pixel = 2;
      try {
        measure_thickness(cv::Mat(size, size, CV_8U, cv::Scalar(255)), o);
      } catch (const Error& e) {
        return std::string(e.what()).find("no background pixel") != std::string::npos ? 0 : 2;
      }
      return 3;  // no error
    });
    EXPECT_EQ(status, 0) << size << "x" << size << " (-1: still running after 20 s)";
  }
}

TEST(Thickness, NearlyFullMaskFinishesInBoundedTime) {
  // One background pixel in a corner: the widths reach across the whole image, and
  // each nearest-point query used to scan O(r^2) grid cells per ring.
  const int status = exit_status_within(60.0, [] {
    cv::Mat m(160, 160, CV_8U, cv::Scalar(255));
    m.at<uchar>(0, 0) = 0;
    ThicknessOptions o;
    o.nm_per_pixel = 2;
    try {
      measure_thickness(m, o);
    } catch (const Error&) {
      return 0;  // a clear error is a defined result too
    }
    return 0;
  });
  EXPECT_EQ(status, 0) << "(-1: still running after 60 s)";
}
