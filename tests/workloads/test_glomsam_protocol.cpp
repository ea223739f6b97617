// `nephroseg glomsam eval` end to end on the 12 PAS images of ../shared/data with two
// synthetic annotator levels (the true masks, and the masks eroded by 4 px) and the
// tiny golden models: every number equals eval::compute_metrics on the written masks
// (recomputed here), boxes come from each level's truth and are shared by the
// models, box plots and the HTML report render (headless Chromium, as for `eval`).
// Bad input: a truth folder that misses images, a model of the wrong kind, an unknown
// ablation row: one clear error, exit codes per tools/nephroseg/options.h, no output.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "nephroseg/eval/metrics.h"
#include "nephroseg/workloads/glomsam_protocol.h"
#include "nephroseg/io/csv.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "support/golden.h"

namespace fs = std::filesystem;
using nephroseg::test::CliRun;
using nephroseg::test::have_cli;
using nephroseg::test::run_cli;
using nephroseg::test::shared_path;
using nephroseg::test::temp_dir;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

size_t files_in(const std::string& dir) {
  if (!fs::exists(dir)) return 0;
  return static_cast<size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

// The second annotator: every true mask eroded by a 9x9 square (4 px).
std::string make_eroded_level(const std::string& root) {
  const std::string dir = root + "/eroded";
  fs::create_directories(dir);
  for (const auto& f : fs::directory_iterator(shared_path("data/glomeruli/masks"))) {
    cv::Mat m = cv::imread(f.path().string(), cv::IMREAD_COLOR);
    cv::Mat red;
    cv::extractChannel(m, red, 2);  // BGR: red
    cv::Mat e;
    cv::erode(red > 127, e, cv::getStructuringElement(cv::MORPH_RECT, cv::Size(9, 9)));
    cv::imwrite(dir + "/" + f.path().filename().string(), e);
  }
  return dir;
}

// Truth read independently of the library: any channel > 127 (the masks are pure
// red or black; the eroded level is 0/255 grey).
cv::Mat read_truth(const std::string& path) {
  cv::Mat m = cv::imread(path, cv::IMREAD_COLOR);
  std::vector<cv::Mat> ch;
  cv::split(m, ch);
  cv::Mat fg = (ch[0] > 127) | (ch[1] > 127) | (ch[2] > 127);
  return fg;
}

std::map<std::string, size_t> index_of(const nephroseg::io::CsvRow& header) {
  std::map<std::string, size_t> idx;
  for (size_t i = 0; i < header.size(); ++i) idx[header[i]] = i;
  return idx;
}

std::string models_args() {
  return " --model glomsam=" + shared_path("golden/glomsam/full_model.pth") +
         " --model-config glomsam=tiny --model medsam=" + shared_path("golden/models/sam_tiny.pth") +
         " --model-config medsam=" + shared_path("golden/models/sam_tiny.json") +
         " --model sam=" + shared_path("golden/models/sam_tiny.pth") +
         " --model-config sam=" + shared_path("golden/models/sam_tiny.json") +
         " --model unet=" + shared_path("golden/glomsam/unet.pth") + " --model-config unet=tiny";
}

}  // namespace

TEST(GlomSamProtocol, InstanceMatchingCountsOneToOnePairsAtIou) {
  cv::Mat truth = cv::Mat::zeros(100, 100, CV_8UC1), pred = cv::Mat::zeros(100, 100, CV_8UC1);
  cv::rectangle(truth, cv::Rect(10, 10, 20, 20), cv::Scalar(255), cv::FILLED);  // 400 px
  cv::rectangle(truth, cv::Rect(60, 60, 20, 20), cv::Scalar(255), cv::FILLED);
  cv::rectangle(pred, cv::Rect(12, 10, 20, 20), cv::Scalar(255), cv::FILLED);   // IoU 360/440
  cv::rectangle(pred, cv::Rect(70, 60, 20, 20), cv::Scalar(255), cv::FILLED);   // IoU 200/600
  cv::rectangle(pred, cv::Rect(40, 85, 5, 5), cv::Scalar(255), cv::FILLED);     // no partner
  const auto c = nephroseg::workloads::match_instances(pred, truth, 0.5);
  EXPECT_EQ(c.truth, 2);
  EXPECT_EQ(c.predicted, 3);
  EXPECT_EQ(c.matched, 1);
  EXPECT_EQ(nephroseg::workloads::match_instances(pred, truth, 0.3).matched, 2);
}

TEST(GlomSamProtocol, EvalOnThePasImagesEqualsEvalMetricsAndRenders) {
  if (!have_cli()) GTEST_SKIP() << "build the nephroseg CLI first";
  NEPHRO_REQUIRE_SHARED("data/glomeruli/images");
  NEPHRO_REQUIRE_SHARED("golden/glomsam/full_model.pth");
  NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.pth");
  const std::string root = temp_dir("glomsam_eval");
  const std::string eroded = make_eroded_level(root);
  const std::string primary = shared_path("data/glomeruli/masks");
  const std::string out = root + "/out";
  const int jitter = 5;
  CliRun r = run_cli("glomsam eval --set pas=" + shared_path("data/glomeruli/images") + " --truth primary=" +
                     primary + " --truth eroded=" + eroded + models_args() + " --jitter " +
                     std::to_string(jitter) + " --seed 11 --title 'Protocol check' --out " + out);
  ASSERT_EQ(r.code, 0) << r.output;

  // Per image: recompute the four metrics from the written mask and the truth.
  const auto rows = nephroseg::io::read_csv(out + "/per_image.csv");
  ASSERT_EQ(rows.size(), 1u + 12 * 2 * 4) << "header + 12 images x 2 levels x 4 models";
  auto idx = index_of(rows[0]);
  std::map<std::string, std::vector<double>> dice_by_group;
  std::map<std::string, std::string> boxes_of;  // (level, image) -> boxes of the prompted models
  for (size_t i = 1; i < rows.size(); ++i) {
    const auto& row = rows[i];
    const std::string level = row[idx["level"]], model = row[idx["model"]], image = row[idx["image"]];
    const cv::Mat pred = cv::imread(out + "/" + row[idx["mask"]], cv::IMREAD_GRAYSCALE);
    ASSERT_FALSE(pred.empty()) << row[idx["mask"]];
    const cv::Mat truth = read_truth((level == "primary" ? primary : eroded) + "/" + image + ".png");
    const nephroseg::eval::MaskMetrics m = nephroseg::eval::compute_metrics(pred, truth);
    EXPECT_DOUBLE_EQ(std::stod(row[idx["accuracy"]]), m.accuracy) << model << " " << level << " " << image;
    EXPECT_DOUBLE_EQ(std::stod(row[idx["iou"]]), m.iou) << model << " " << level << " " << image;
    EXPECT_DOUBLE_EQ(std::stod(row[idx["dice"]]), m.dice) << model << " " << level << " " << image;
    EXPECT_DOUBLE_EQ(std::stod(row[idx["recall"]]), m.recall) << model << " " << level << " " << image;
    dice_by_group[level + "/" + model].push_back(m.dice);
    // Instances of the truth: 8-connected components, counted here.
    cv::Mat labels;
    EXPECT_EQ(std::stoll(row[idx["truth_instances"]]), cv::connectedComponents(truth, labels, 8) - 1) << image;
    if (model == "unet") {
      EXPECT_EQ(row[idx["boxes"]], "");  // the UNet takes no prompt
      continue;
    }
    // One box per image, within `jitter` px outside the truth's bounding box.
    std::vector<cv::Point> fg;
    cv::findNonZero(truth, fg);
    const cv::Rect bb = cv::boundingRect(fg);
    double b[4];
    ASSERT_EQ(std::sscanf(row[idx["boxes"]].c_str(), "%lf %lf %lf %lf", &b[0], &b[1], &b[2], &b[3]), 4)
        << row[idx["boxes"]];
    const double lo[4] = {std::max(0, bb.x - jitter) * 1.0, std::max(0, bb.y - jitter) * 1.0,
                          (bb.x + bb.width - 1) * 1.0, (bb.y + bb.height - 1) * 1.0};
    const double hi[4] = {bb.x * 1.0, bb.y * 1.0, std::min(1024, bb.x + bb.width - 1 + jitter) * 1.0,
                          std::min(1024, bb.y + bb.height - 1 + jitter) * 1.0};
    for (int k = 0; k < 4; ++k) {
      EXPECT_GE(b[k], lo[k]) << level << " " << image << " side " << k;
      EXPECT_LE(b[k], hi[k]) << level << " " << image << " side " << k;
    }
    // Every prompted model gets the very same box.
    auto [it, fresh] = boxes_of.emplace(level + "/" + image, row[idx["boxes"]]);
    if (!fresh) {
      EXPECT_EQ(it->second, row[idx["boxes"]]) << model << " " << level << " " << image;
    }
  }
  // The eroded level's boxes are tighter than the primary's for at least one image.
  int tighter = 0;
  for (const auto& f : fs::directory_iterator(primary)) {
    const std::string stem = f.path().stem().string();
    if (boxes_of["primary/" + stem] != boxes_of["eroded/" + stem]) ++tighter;
  }
  EXPECT_GT(tighter, 0);

  // Summary: mean and sample SD of the recomputed per-image values.
  const auto sum = nephroseg::io::read_csv(out + "/summary.csv");
  auto sidx = index_of(sum[0]);
  int checked = 0;
  for (size_t i = 1; i < sum.size(); ++i) {
    if (sum[i][sidx["metric"]] != "dice") continue;
    const auto& v = dice_by_group[sum[i][sidx["level"]] + "/" + sum[i][sidx["model"]]];
    ASSERT_EQ(v.size(), 12u);
    double mean = 0, ss = 0;
    for (double x : v) mean += x;
    mean /= 12.0;
    for (double x : v) ss += (x - mean) * (x - mean);
    EXPECT_NEAR(std::stod(sum[i][sidx["mean"]]), mean, 1e-12);
    EXPECT_NEAR(std::stod(sum[i][sidx["sd"]]), std::sqrt(ss / 11.0), 1e-12);
    ++checked;
  }
  EXPECT_EQ(checked, 8);
  const auto j = nlohmann::json::parse(read_text(out + "/summary.json"));
  EXPECT_EQ(j["groups"].size(), 8u);
  EXPECT_EQ(j["images"].size(), 96u);
  const auto inst = nephroseg::io::read_csv(out + "/instances.csv");
  ASSERT_EQ(inst.size(), 9u);
  EXPECT_EQ(inst[1][3], "16") << "12 masks, 4 of them with 2 glomeruli";

  // Box plots: one PNG per (set, level, metric), one box per model.
  for (const char* level : {"primary", "eroded"})
    for (const char* m : {"accuracy", "iou", "dice", "recall"}) {
      const cv::Mat plot = cv::imread(out + "/boxplot_pas_" + std::string(level) + "_" + m + ".png");
      ASSERT_FALSE(plot.empty()) << level << " " << m;
      EXPECT_EQ(plot.cols, 4 * 420);
    }

  // The HTML renders.
  const std::string html = out + "/report.html";
  const std::string text = read_text(html);
  EXPECT_EQ(text.find("src=\"http"), std::string::npos);
  EXPECT_NE(text.find("data:image/png;base64,"), std::string::npos);
  const std::string chromium = "/usr/bin/chromium";
  if (!fs::exists(chromium)) GTEST_SKIP() << "needs " << chromium << " to render the HTML report";
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
  ASSERT_FALSE(img.empty()) << "screenshot missing";
  cv::Scalar mean, sdv;
  cv::meanStdDev(img, mean, sdv);
  EXPECT_GT(sdv[0] + sdv[1] + sdv[2], 10.0) << "screenshot looks blank";
  const std::string d = read_text(dom);
  for (const char* s : {"Protocol check", "table-pas", "instances-pas", "glomsam", "medsam", "unet", "eroded"})
    EXPECT_NE(d.find(s), std::string::npos) << s << " missing from the rendered page";
  // The paper-shaped table shows the mean Dice of GlomSAM on the primary level in %.
  const auto& v = dice_by_group["primary/glomsam"];
  double mean_dice = 0;
  for (double x : v) mean_dice += x;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", 100.0 * mean_dice / 12.0);
  EXPECT_NE(d.find(buf), std::string::npos) << "GlomSAM mean Dice " << buf << " missing";
}

TEST(GlomSamProtocol, BadInputIsOneClearErrorAndWritesNothing) {
  if (!have_cli()) GTEST_SKIP() << "build the nephroseg CLI first";
  NEPHRO_REQUIRE_SHARED("data/glomeruli/images");
  NEPHRO_REQUIRE_SHARED("golden/glomsam/full_model.pth");
  const std::string root = temp_dir("glomsam_eval_bad");
  const std::string images = shared_path("data/glomeruli/images");
  // A truth folder without 10170.png.
  const std::string partial = root + "/partial";
  fs::create_directories(partial);
  for (const auto& f : fs::directory_iterator(shared_path("data/glomeruli/masks")))
    if (f.path().filename() != "10170.png") fs::copy_file(f.path(), partial + "/" + f.path().filename().string());
  const std::string glom = " --model glomsam=" + shared_path("golden/glomsam/full_model.pth") +
                           " --model-config glomsam=tiny";
  const std::string out1 = root + "/out1";
  CliRun missing = run_cli("glomsam eval --images " + images + " --truth primary=" + partial + glom + " --out " + out1);
  EXPECT_EQ(missing.code, 1) << missing.output;
  EXPECT_NE(missing.output.find("--truth primary=" + partial + ": no mask for 1 of the 12 images"), std::string::npos)
      << missing.output;
  EXPECT_NE(missing.output.find("10170.png"), std::string::npos) << missing.output;
  EXPECT_EQ(files_in(out1), 0u);

  // A GlomSAM checkpoint given as a UNet, and a kind that does not exist.
  const std::string truth = " --truth primary=" + shared_path("data/glomeruli/masks");
  const std::string out2 = root + "/out2";
  CliRun wrong = run_cli("glomsam eval --images " + images + truth + " --model unet=" +
                         shared_path("golden/glomsam/full_model.pth") + " --model-config unet=tiny --out " + out2);
  EXPECT_EQ(wrong.code, 1) << wrong.output;
  EXPECT_NE(wrong.output.find("not a unet checkpoint"), std::string::npos) << wrong.output;
  EXPECT_EQ(files_in(out2), 0u);
  CliRun kind = run_cli("glomsam eval --images " + images + truth + " --model yolo=" +
                        shared_path("golden/glomsam/full_model.pth") + " --out " + out2);
  EXPECT_EQ(kind.code, 1) << kind.output;
  EXPECT_NE(kind.output.find("unknown model kind 'yolo' (expected one of: glomsam, medsam, sam, unet)"),
            std::string::npos)
      << kind.output;
  EXPECT_EQ(files_in(out2), 0u);
  CliRun shape = run_cli("glomsam eval --images " + images + truth + " --model glomsam --out " + out2);
  EXPECT_EQ(shape.code, 2) << shape.output;  // malformed option value: usage error
  EXPECT_EQ(files_in(out2), 0u);

  // An ablation row that does not exist (train and predict).
  const std::string out3 = root + "/out3";
  CliRun row = run_cli("glomsam train --images " + images + " --masks " + shared_path("data/glomeruli/masks") +
                       " --config tiny --ablation no_unet --out " + out3);
  EXPECT_EQ(row.code, 1) << row.output;
  EXPECT_NE(row.output.find("--ablation: unknown ablation row 'no_unet'"), std::string::npos) << row.output;
  EXPECT_EQ(files_in(out3), 0u);
  CliRun prow = run_cli("glomsam predict --checkpoint " + shared_path("golden/glomsam/full_model.pth") +
                        " --config tiny --image " + images + "/10003.png --ablation none --out " + out3);
  EXPECT_EQ(prow.code, 1) << prow.output;
  EXPECT_NE(prow.output.find("unknown ablation row 'none'"), std::string::npos) << prow.output;
  EXPECT_EQ(files_in(out3), 0u);
}
