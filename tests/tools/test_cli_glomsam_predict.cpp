// End-to-end checks of `nephroseg glomsam predict` on bad prompts: a box entirely
// outside the image and an all-zero ground truth with --box-from-gt are clear errors
// (exit 1) that leave no output file behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "support/golden.h"

namespace fs = std::filesystem;
using nephroseg::test::CliRun;
using nephroseg::test::have_cli;
using nephroseg::test::run_cli;
using nephroseg::test::shared_path;
using nephroseg::test::temp_dir;

namespace {

// Binary PPM (P6) / PGM (P5) files, written byte by byte.
void write_pnm(const std::string& path, int w, int h, int channels, unsigned seed, bool zero) {
  std::ofstream out(path, std::ios::binary);
  out << (channels == 3 ? "P6" : "P5") << "\n" << w << " " << h << "\n255\n";
  std::mt19937 gen(seed);
  for (int k = 0; k < w * h * channels; ++k) out.put(zero ? '\0' : static_cast<char>(gen() & 0xff));
}

size_t files_in(const std::string& dir) {
  if (!fs::exists(dir)) return 0;
  return static_cast<size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

}  // namespace

TEST(CliGlomsamPredict, BoxOutsideTheImageAndEmptyGroundTruthAreErrors) {
  if (!have_cli()) GTEST_SKIP() << "build the nephroseg CLI first";
  NEPHRO_REQUIRE_SHARED("golden/glomsam/full_model.pth");
  const std::string dir = temp_dir("cli_glomsam_bad");
  const std::string image = dir + "/img.ppm", gt = dir + "/gt.pgm";
  write_pnm(image, 200, 160, 3, 7, /*zero=*/false);
  write_pnm(gt, 200, 160, 1, 0, /*zero=*/true);
  const std::string base = "glomsam predict --checkpoint " +
                           shared_path("golden/glomsam/full_model.pth") + " --config tiny --image " +
                           image;

  const std::string out1 = dir + "/out_box";
  CliRun outside = run_cli(base + " --box 300,200,400,260 --out " + out1);
  EXPECT_EQ(outside.code, 1) << outside.output;
  EXPECT_NE(outside.output.find("lies entirely outside the 200x160 image"), std::string::npos)
      << outside.output;
  EXPECT_EQ(files_in(out1), 0u);

  CliRun left = run_cli(base + " --box -90,10,-10,50 --out " + out1);
  EXPECT_EQ(left.code, 1) << left.output;
  EXPECT_NE(left.output.find("entirely outside"), std::string::npos) << left.output;

  const std::string out2 = dir + "/out_gt";
  CliRun empty_gt = run_cli(base + " --gt " + gt + " --box-from-gt --out " + out2);
  EXPECT_EQ(empty_gt.code, 1) << empty_gt.output;
  EXPECT_NE(empty_gt.output.find("has no foreground pixel"), std::string::npos) << empty_gt.output;
  EXPECT_EQ(files_in(out2), 0u);

  // A box partly inside the image is still accepted (clipped), as before.
  const std::string out3 = dir + "/out_ok";
  CliRun ok = run_cli(base + " --box 150,100,260,220 --out " + out3);
  EXPECT_EQ(ok.code, 0) << ok.output;
  EXPECT_TRUE(fs::exists(out3 + "/img_mask.png")) << ok.output;
}
