#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "nephroseg/core/error.h"
#include "nephroseg/eval/metrics.h"
#include "nephroseg/eval/report.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "support/golden.h"

using namespace nephroseg;
using namespace nephroseg::eval;
namespace fs = std::filesystem;

TEST(Metrics, HandComputedOverlap) {
  cv::Mat p = cv::Mat::zeros(20, 20, CV_8U), t = p.clone();
  cv::rectangle(p, cv::Rect(0, 0, 10, 10), cv::Scalar(255), cv::FILLED);
  cv::rectangle(t, cv::Rect(5, 0, 10, 10), cv::Scalar(1), cv::FILLED);
  const MaskMetrics m = compute_metrics(p, t);
  EXPECT_EQ(m.tp, 50);
  EXPECT_EQ(m.fp, 50);
  EXPECT_EQ(m.fn, 50);
  EXPECT_EQ(m.tn, 250);
  EXPECT_DOUBLE_EQ(m.dice, 0.5);
  EXPECT_DOUBLE_EQ(m.iou, 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.precision, 0.5);
  EXPECT_DOUBLE_EQ(m.recall, 0.5);
  EXPECT_DOUBLE_EQ(m.accuracy, 0.75);
}

TEST(Metrics, Hd95AndBoundaryIou) {
  cv::Mat p = cv::Mat::zeros(20, 20, CV_8U), t = p.clone();
  cv::line(p, cv::Point(0, 5), cv::Point(19, 5), cv::Scalar(255));
  cv::line(t, cv::Point(0, 9), cv::Point(19, 9), cv::Scalar(255));
  EXPECT_NEAR(hd95(p, t), 4.0, 1e-6);
  cv::Mat a = cv::Mat::zeros(20, 20, CV_8U), b = a.clone();
  a.at<uint8_t>(2, 2) = 255;
  b.at<uint8_t>(7, 2) = 255;
  EXPECT_NEAR(hd95(a, b), 5.0, 1e-6);
  cv::Mat sq = cv::Mat::zeros(100, 100, CV_8U);
  cv::rectangle(sq, cv::Rect(20, 20, 50, 50), cv::Scalar(255), cv::FILLED);
  EXPECT_DOUBLE_EQ(boundary_iou(sq, sq), 1.0);
  EXPECT_DOUBLE_EQ(hd95(sq, sq), 0.0);
  cv::Mat other = cv::Mat::zeros(100, 100, CV_8U);
  cv::rectangle(other, cv::Rect(80, 80, 10, 10), cv::Scalar(255), cv::FILLED);
  EXPECT_DOUBLE_EQ(boundary_iou(sq, other), 0.0);
  // A one-pixel shift hurts boundary IoU much more than IoU.
  cv::Mat shifted = cv::Mat::zeros(100, 100, CV_8U);
  cv::rectangle(shifted, cv::Rect(22, 20, 50, 50), cv::Scalar(255), cv::FILLED);
  const MaskMetrics m = compute_metrics(shifted, sq);
  EXPECT_LT(m.boundary_iou, m.iou);
  EXPECT_NEAR(m.hd95, 2.0, 1e-6);
}

TEST(Metrics, EmptyMaskConventions) {
  const cv::Mat z = cv::Mat::zeros(10, 10, CV_8U);
  cv::Mat one = z.clone();
  one.at<uint8_t>(3, 3) = 255;
  const MaskMetrics both = compute_metrics(z, z);
  EXPECT_EQ(both.dice, 1.0);
  EXPECT_EQ(both.iou, 1.0);
  EXPECT_EQ(both.boundary_iou, 1.0);
  EXPECT_EQ(both.hd95, 0.0);
  const MaskMetrics no_pred = compute_metrics(z, one);
  EXPECT_EQ(no_pred.dice, 0.0);
  EXPECT_EQ(no_pred.recall, 0.0);
  EXPECT_TRUE(std::isnan(no_pred.hd95));
  const MaskMetrics no_truth = compute_metrics(one, z);
  EXPECT_EQ(no_truth.precision, 0.0);
  EXPECT_TRUE(std::isnan(no_truth.hd95));
  EXPECT_THROW(compute_metrics(z, cv::Mat::zeros(11, 10, CV_8U)), Error);
}

TEST(Metrics, SummaryStatistics) {
  const SummaryStats s = summarize({4, 1, std::nan(""), 3, 2});
  EXPECT_EQ(s.n, 4);
  EXPECT_EQ(s.n_nan, 1);
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
  EXPECT_NEAR(s.sd, std::sqrt(5.0 / 3.0), 1e-12);
  EXPECT_DOUBLE_EQ(s.median, 2.5);
  EXPECT_DOUBLE_EQ(s.q25, 1.75);
  EXPECT_DOUBLE_EQ(s.q75, 3.25);
  EXPECT_DOUBLE_EQ(s.iqr, 1.5);
  EXPECT_TRUE(std::isnan(summarize({}).mean));
}

namespace {

// pred/ and truth/ folders: three good pairs, one size mismatch, one missing each way.
std::string make_eval_folders(const std::string& root) {
  fs::create_directories(root + "/pred");
  fs::create_directories(root + "/truth");
  fs::create_directories(root + "/images");
  for (int i = 0; i < 3; ++i) {
    cv::Mat t = cv::Mat::zeros(96, 128, CV_8U), p = t.clone();
    cv::circle(t, cv::Point(60, 48), 25, cv::Scalar(255), cv::FILLED);
    cv::circle(p, cv::Point(60 + 4 * i, 48), 25 - 3 * i, cv::Scalar(255), cv::FILLED);
    const std::string name = "case_" + std::to_string(i);
    io::write_mask_png(root + "/pred/" + name + ".png", p);
    io::write_mask_png(root + "/truth/" + name + ".png", t);
    cv::Mat img(96, 128, CV_8UC3, cv::Scalar(90, 120, 150));
    io::write_png(root + "/images/" + name + ".png", img);
  }
  io::write_mask_png(root + "/pred/sized.png", cv::Mat::zeros(50, 50, CV_8U));
  io::write_mask_png(root + "/truth/sized.png", cv::Mat::zeros(60, 50, CV_8U));
  io::write_mask_png(root + "/pred/only_pred.png", cv::Mat::zeros(50, 50, CV_8U));
  io::write_mask_png(root + "/truth/only_truth.png", cv::Mat::zeros(50, 50, CV_8U));
  return root;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST(EvalReport, FoldersWithProblemsAreReportedPerImage) {
  const std::string root = make_eval_folders(test::temp_dir("eval_folders"));
  EvalOptions o;
  o.image_dir = root + "/images";
  const EvalRun run = evaluate_folders(root + "/pred", root + "/truth", o);
  ASSERT_EQ(run.items.size(), 6u);
  EXPECT_EQ(run.num_ok(), 3);
  std::map<std::string, std::string> status;
  for (const auto& it : run.items) status[it.name] = it.status;
  EXPECT_EQ(status["only_pred"], "missing truth");
  EXPECT_EQ(status["only_truth"], "missing prediction");
  EXPECT_NE(status["sized"].find("size mismatch"), std::string::npos);
  EXPECT_EQ(run.summary.at("dice").n, 3);
  const auto files = write_eval_report(root + "/out", run, o);
  EXPECT_EQ(files.size(), 4u + metric_names().size());
  for (const auto& f : files) EXPECT_TRUE(fs::exists(f)) << f;
  const auto rows = io::read_csv(root + "/out/per_image.csv");
  ASSERT_EQ(rows.size(), 7u);
  EXPECT_EQ(rows[0][2], "dice");
  // case_0 is a perfect prediction.
  for (const auto& r : rows)
    if (r[0] == "case_0") {
      EXPECT_EQ(r[2], "1");
    }
  const auto j = nlohmann::json::parse(read_text(root + "/out/summary.json"));
  EXPECT_EQ(j["num_evaluated"], 3);
  EXPECT_NEAR(j["summary"]["dice"]["mean"].get<double>(), run.summary.at("dice").mean, 1e-12);
  EXPECT_FALSE(cv::imread(root + "/out/boxplot_dice.png").empty());
  EXPECT_THROW(evaluate_folders(root + "/absent", root + "/truth"), Error);
}

TEST(EvalReport, HtmlOpensInHeadlessChromium) {
  const std::string chromium = "/usr/bin/chromium";
  if (!fs::exists(chromium))
    GTEST_SKIP() << "needs " << chromium << " (Debian package 'chromium') to render the HTML report";
  const std::string root = make_eval_folders(test::temp_dir("eval_chromium"));
  EvalOptions o;
  o.image_dir = root + "/images";
  o.title = "Chromium check";
  const EvalRun run = evaluate_folders(root + "/pred", root + "/truth", o);
  write_eval_report(root + "/out", run, o);
  const std::string html = root + "/out/report.html";
  // Self-contained: no external references.
  const std::string text = read_text(html);
  EXPECT_EQ(text.find("src=\"http"), std::string::npos);
  EXPECT_NE(text.find("data:image/png;base64,"), std::string::npos);
  const std::string flags =
      " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking"
      " --disable-component-update --disable-sync --user-data-dir=";
  const std::string shot = root + "/shot.png", dom = root + "/dom.html";
  const std::string cmd1 = "timeout 90 " + chromium + flags + root + "/profile1 --screenshot=" + shot +
                           " --window-size=1200,900 file://" + html + " > " + root + "/chromium1.log 2>&1";
  const std::string cmd2 = "timeout 90 " + chromium + flags + root + "/profile2 --dump-dom file://" + html + " > " +
                           dom + " 2> " + root + "/chromium2.log";
  ASSERT_EQ(std::system(cmd1.c_str()), 0) << read_text(root + "/chromium1.log");
  ASSERT_EQ(std::system(cmd2.c_str()), 0) << read_text(root + "/chromium2.log");
  const cv::Mat img = cv::imread(shot);
  ASSERT_FALSE(img.empty()) << "screenshot missing or not a PNG";
  EXPECT_EQ(img.cols, 1200);
  cv::Scalar mean, sd;
  cv::meanStdDev(img, mean, sd);
  EXPECT_GT(sd[0] + sd[1] + sd[2], 10.0) << "screenshot looks blank";
  const std::string d = read_text(dom);
  for (const char* name : {"case_0", "case_1", "case_2", "only_pred", "only_truth", "sized", "Chromium check"})
    EXPECT_NE(d.find(name), std::string::npos) << name << " missing from the rendered page";
  char dice[32];
  std::snprintf(dice, sizeof dice, "%.4f", run.summary.at("dice").mean);
  EXPECT_NE(d.find(dice), std::string::npos) << "mean Dice " << dice << " missing";
  // Worst first: case_2 (smallest, shifted) comes before case_0 (perfect).
  EXPECT_LT(d.find("id=\"img-case_2\""), d.find("id=\"img-case_0\""));
}
