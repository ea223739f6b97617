// Crash safety of `nephroseg glomsam train` (issue 14): the command is killed with
// SIGKILL at random moments, then rerun (with --resume when a last.pth was written,
// else from scratch) until it completes. The outputs must then equal an uninterrupted
// run's: split.txt and curves.png byte for byte, log.csv without its two wall-time
// columns, and every tensor and number of last.pth and best.pth; and no `.tmp-`
// temporary may be left anywhere under the output folder.
#include <gtest/gtest.h>

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

#include "nephroseg/checkpoint/pth.h"
#include "nephroseg/io/image.h"
#include "support/golden.h"

namespace fs = std::filesystem;
namespace t = nephroseg::test;
using nephroseg::checkpoint::Value;

namespace {

// Small immunofluorescence-like images: noise with one bright ellipse (the mask).
void make_images(const std::string& dir, int count, uint32_t seed) {
  fs::create_directories(dir + "/images");
  fs::create_directories(dir + "/masks");
  std::mt19937 rng(seed);
  for (int i = 0; i < count; ++i) {
    cv::Mat img(160, 160, CV_8UC3), mask = cv::Mat::zeros(160, 160, CV_8UC1);
    cv::randu(img, cv::Scalar(40, 50, 60), cv::Scalar(100, 110, 120));
    const cv::Point c(50 + static_cast<int>(rng() % 60), 50 + static_cast<int>(rng() % 60));
    cv::ellipse(mask, c, cv::Size(20 + static_cast<int>(rng() % 15), 18 + static_cast<int>(rng() % 15)), 0, 0, 360,
                cv::Scalar(255), cv::FILLED);
    img.setTo(cv::Scalar(210, 170, 200), mask);
    const std::string name = "k" + std::to_string(i) + ".png";
    nephroseg::io::write_png(dir + "/images/" + name, img);
    nephroseg::io::write_png(dir + "/masks/" + name, mask);
  }
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// log.csv without the columns `seconds` and `images_per_second` (wall times).
std::string csv_without_times(const std::string& text) {
  std::istringstream in(text);
  std::string line, out;
  std::vector<bool> keep;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream ls(line);
    for (std::string c; std::getline(ls, c, ',');) cells.push_back(c);
    if (keep.empty())
      for (const auto& c : cells) keep.push_back(c != "seconds" && c != "images_per_second");
    for (size_t k = 0; k < cells.size(); ++k)
      if (k >= keep.size() || keep[k]) out += cells[k] + ",";
    out += "\n";
  }
  return out;
}

// Differences between two checkpoint trees, ignoring the wall times in "history";
// empty when equal (tensors compared exactly).
std::string diff_values(const Value& a, const Value& b, const std::string& where) {
  if (a.kind != b.kind) return where + ": kinds differ";
  switch (a.kind) {
    case Value::Kind::kTensor:
      return a.tensor.sizes() == b.tensor.sizes() && a.tensor.dtype() == b.tensor.dtype() && a.tensor.equal(b.tensor)
                 ? ""
                 : where + ": tensors differ";
    case Value::Kind::kList:
    case Value::Kind::kTuple:
      if (a.items.size() != b.items.size()) return where + ": lengths differ";
      for (size_t i = 0; i < a.items.size(); ++i) {
        const std::string d = diff_values(a.items[i], b.items[i], where + "[" + std::to_string(i) + "]");
        if (!d.empty()) return d;
      }
      return "";
    case Value::Kind::kDict:
      if (a.entries.size() != b.entries.size()) return where + ": sizes differ";
      for (size_t i = 0; i < a.entries.size(); ++i) {
        const std::string key = a.entries[i].first.s;
        if (key == "seconds" || key == "images_per_second") continue;
        const std::string d = diff_values(a.entries[i].first, b.entries[i].first, where + " key");
        if (!d.empty()) return d;
        const std::string dv = diff_values(a.entries[i].second, b.entries[i].second, where + "." + key);
        if (!dv.empty()) return dv;
      }
      return "";
    default:
      return a.b == b.b && a.i == b.i && a.f == b.f && a.s == b.s ? "" : where + ": values differ";
  }
}

std::string diff_checkpoints(const std::string& a, const std::string& b) {
  if (!fs::exists(a) || !fs::exists(b)) return "missing " + (fs::exists(a) ? b : a);
  return diff_values(nephroseg::checkpoint::load_pickle_file(a), nephroseg::checkpoint::load_pickle_file(b),
                     fs::path(a).filename().string());
}

}  // namespace

TEST(TrainKill, KilledRunsResumeToTheUninterruptedOutputs) {
  if (!t::have_cli()) GTEST_SKIP() << "needs the nephroseg CLI (build target nephroseg_cli)";
  const std::string root = t::temp_dir("train_kill");
  make_images(root + "/train", 6, 11);
  make_images(root + "/val", 2, 12);
  const std::string args = "glomsam train --images " + root + "/train/images --masks " + root +
                           "/train/masks --val-images " + root + "/val/images --val-masks " + root +
                           "/val/masks --config tiny --seed 3 --epochs 5 --batch-size 2 --lr 2e-4 --patience 0";
  const std::string ref = root + "/ref";
  const auto t0 = std::chrono::steady_clock::now();
  int code = -1;
  ASSERT_FALSE(t::run_cli_killed_after(args + " --out " + ref, 600, root + "/ref.log", &code));
  ASSERT_EQ(code, 0) << read_bytes(root + "/ref.log");
  const double whole_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("uninterrupted run: %.1f s\n", whole_s);

  std::mt19937 rng(2026);
  // Reruns are faster than the first (warm caches): moments in the first 80 %.
  std::uniform_real_distribution<double> when(0.05, 0.8);
  int total_kills = 0;
  for (int trial = 0; trial < 4; ++trial) {
    const std::string out = root + "/killed" + std::to_string(trial);
    // Killed once or twice, at random moments of a whole run's duration.
    int kills = 0;
    for (int k = 0; k <= trial % 2; ++k) {
      const double at = when(rng) * whole_s;
      const bool resume = fs::exists(out + "/last.pth");
      if (t::run_cli_killed_after(args + (resume ? " --resume" : "") + " --out " + out, at,
                                  root + "/kill.log"))
        ++kills;
    }
    total_kills += kills;
    const bool resume = fs::exists(out + "/last.pth");
    std::printf("trial %d: %d kill(s), rerun %s\n", trial, kills, resume ? "with --resume" : "from scratch");
    ASSERT_FALSE(t::run_cli_killed_after(args + (resume ? " --resume" : "") + " --out " + out, 600,
                                         root + "/rerun.log", &code));
    ASSERT_EQ(code, 0) << read_bytes(root + "/rerun.log");
    EXPECT_EQ(t::temporaries_under(out), std::vector<std::string>{}) << "trial " << trial;
    for (const char* f : {"split.txt", "curves.png"})
      EXPECT_EQ(read_bytes(out + "/" + f), read_bytes(ref + "/" + f)) << f << ", trial " << trial;
    EXPECT_EQ(csv_without_times(read_bytes(out + "/log.csv")), csv_without_times(read_bytes(ref + "/log.csv")))
        << "trial " << trial;
    for (const char* f : {"last.pth", "best.pth"})
      EXPECT_EQ(diff_checkpoints(out + "/" + f, ref + "/" + f), "") << "trial " << trial;
  }
  EXPECT_GE(total_kills, 4) << "too few kills hit a running process: the test proved little";
}
