#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "nephroseg/core/error.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/measure/phantom.h"
#include "nephroseg/measure/reference.h"
#include "nephroseg/measure/report.h"
#include "support/golden.h"

using namespace nephroseg;
using namespace nephroseg::measure;

TEST(Reference, PresetsClassify) {
  const auto& r = find_reference_range("haas2006-adult-male");
  EXPECT_EQ(r.low_nm, 230);
  EXPECT_EQ(r.high_nm, 430);
  EXPECT_EQ(classify_thickness(200, r), "thin");
  EXPECT_EQ(classify_thickness(330, r), "normal");
  EXPECT_EQ(classify_thickness(500, r), "thick");
  EXPECT_EQ(classify_thickness(std::nan(""), r), "unknown");
  EXPECT_EQ(classify_thickness(300, find_reference_range("goel1995-thin")), "thin");
  EXPECT_EQ(classify_thickness(1000, find_reference_range("goel1995-thin")), "normal");
  EXPECT_THROW(find_reference_range("nope"), Error);
  EXPECT_THROW(custom_reference_range(400, 300, Estimator::kDirect), Error);
  for (const auto& p : reference_ranges()) EXPECT_FALSE(p.source.empty()) << p.id;
  EXPECT_EQ(reference_ranges().front().id, default_reference_id());
}

TEST(Report, WritesAllFilesWithConsistentContent) {
  PhantomOptions po;
  po.seed = 2;
  po.size = 256;
  po.thickness_px = 14;
  const Phantom ph = generate_phantom(po);
  ThicknessOptions to;
  to.nm_per_pixel = ph.nm_per_pixel;
  const ThicknessResult r = measure_thickness(ph.mask, to);
  const std::string dir = test::temp_dir("measure_report");
  const auto& range = find_reference_range(default_reference_id());
  const auto paths = write_thickness_report(dir, "ph", ph.image, ph.mask, r, range, to);
  ASSERT_EQ(paths.size(), 4u);
  for (const auto& p : paths) EXPECT_TRUE(std::filesystem::exists(p)) << p;
  const auto rows = io::read_csv(dir + "/ph_measurements.csv");
  EXPECT_EQ(rows.size(), r.measurements.size() + 1);
  EXPECT_EQ(rows[0][9], "width_nm");
  std::ifstream in(dir + "/ph_summary.json");
  const auto j = nlohmann::json::parse(in);
  EXPECT_NEAR(j["orthogonal_intercept"]["harmonic_mean_nm"].get<double>(), r.oi.harmonic_mean * ph.nm_per_pixel, 1e-6);
  EXPECT_EQ(j["reference_range"]["id"], range.id);
  EXPECT_FALSE(j["reference_range"]["source"].get<std::string>().empty());
  EXPECT_TRUE(j["classification"].contains("class"));
  const cv::Mat hist = cv::imread(dir + "/ph_histogram.png");
  const cv::Mat overlay = cv::imread(dir + "/ph_overlay.png");
  EXPECT_FALSE(hist.empty());
  EXPECT_EQ(overlay.size(), ph.image.size());
  write_thickness_batch_summary(dir, {"ph"}, {r}, range);
  EXPECT_EQ(io::read_csv(dir + "/summary.csv").size(), 2u);
}
