// Crash safety of `nephroseg slide` (issue 14): the command is killed with SIGKILL at
// random moments on a small synthetic slide, then rerun into the same folder (the tile
// records make it resume). The outputs must then equal an uninterrupted run's byte for
// byte (run.json without its wall times), and no `.tmp-` temporary may be left.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "slide_fixtures.h"
#include "support/golden.h"

namespace fs = std::filesystem;
namespace t = nephroseg::test;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> files_under(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(fs::relative(e.path(), dir).string());
  std::sort(out.begin(), out.end());
  return out;
}

// Fluorescence-like: tissue (60) on black with bright round objects (210), 0.5 µm/px,
// a 3-level tiled OME-TIFF pyramid.
std::string write_slide(const std::string& dir) {
  cv::Mat m(2200, 2400, CV_8U, cv::Scalar(0));
  cv::rectangle(m, cv::Rect(40, 40, 2320, 2120), cv::Scalar(60), cv::FILLED);
  std::mt19937 rng(9);
  for (int k = 0; k < 40; ++k)
    cv::circle(m, cv::Point(100 + static_cast<int>(rng() % 2200), 100 + static_cast<int>(rng() % 2000)),
               30 + static_cast<int>(rng() % 80), cv::Scalar(210), cv::FILLED);
  t::FixtureTiff f;
  f.levels = {m};
  for (int k = 1; k < 3; ++k) {
    cv::Mat d;
    cv::resize(f.levels.back(), d, cv::Size((f.levels.back().cols + 1) / 2, (f.levels.back().rows + 1) / 2), 0, 0,
               cv::INTER_AREA);
    f.levels.push_back(d);
  }
  f.mpp = 0.5;
  const std::string path = dir + "/kill.ome.tif";
  t::write_fixture_tiff(path, f);
  return path;
}

}  // namespace

TEST(SlideKill, KilledRunsResumeByteIdentical) {
  if (!t::have_cli()) GTEST_SKIP() << "needs the nephroseg CLI (build target nephroseg_cli)";
  const std::string root = t::temp_dir("slide_kill");
  const std::string args = "slide --slide " + write_slide(root) + " --tile 256 --halo 32";
  const std::string ref = root + "/ref";
  const auto t0 = std::chrono::steady_clock::now();
  int code = -1;
  ASSERT_FALSE(t::run_cli_killed_after(args + " --out " + ref, 600, root + "/ref.log", &code));
  ASSERT_EQ(code, 0) << read_bytes(root + "/ref.log");
  const double whole_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("uninterrupted run: %.2f s\n", whole_s);
  const std::vector<std::string> ref_files = files_under(ref);
  ASSERT_GT(ref_files.size(), 5u);

  std::mt19937 rng(14);
  std::uniform_real_distribution<double> when(0.05, 0.95);
  for (int trial = 0; trial < 5; ++trial) {
    const std::string out = root + "/killed" + std::to_string(trial);
    int kills = 0;
    for (int k = 0; k <= trial % 3; ++k)
      if (t::run_cli_killed_after(args + " --out " + out, when(rng) * whole_s, root + "/kill.log")) ++kills;
    ASSERT_FALSE(t::run_cli_killed_after(args + " --out " + out, 600, root + "/rerun.log", &code));
    ASSERT_EQ(code, 0) << read_bytes(root + "/rerun.log");
    std::printf("trial %d: %d kill(s)\n", trial, kills);
    EXPECT_EQ(t::temporaries_under(out), std::vector<std::string>{}) << "trial " << trial;
    EXPECT_EQ(files_under(out), ref_files) << "trial " << trial;
    for (const auto& f : ref_files) {
      if (f == "run.json") {
        auto a = nlohmann::json::parse(read_bytes(ref + "/" + f));
        auto b = nlohmann::json::parse(read_bytes(out + "/" + f));
        a.erase("timings_s");
        b.erase("timings_s");
        EXPECT_EQ(a, b) << "trial " << trial;
      } else {
        EXPECT_EQ(read_bytes(out + "/" + f), read_bytes(ref + "/" + f)) << f << ", trial " << trial;
      }
    }
  }
}
