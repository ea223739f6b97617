// `nephroseg features` end to end (skipped when the CLI binary has not been built).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "nephroseg/dinov2/dinov2.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/npy.h"
#include "support/golden.h"

namespace {

namespace fs = std::filesystem;
namespace nt = nephroseg::test;

std::string cli_path() { return nt::binary_dir() + "/nephroseg"; }

int run(const std::string& args) {
  const std::string cmd = cli_path() + " --quiet " + args + " 2>/dev/null";
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(Dinov2Cli, FeaturesWritesPatchTokensAndRejectsBadInput) {
  NEPHRO_REQUIRE_SHARED("golden/models/dinov2_tiny_reg4.pth");
  NEPHRO_REQUIRE_SHARED("data/gbmseg_sample/reference_image/001_264193_2.png");
  if (!fs::exists(cli_path())) GTEST_SKIP() << "nephroseg CLI not built";
  const std::string g = nt::shared_path("golden/models");
  const std::string image = nt::shared_path("data/gbmseg_sample/reference_image/001_264193_2.png");
  const std::string dir = nt::temp_dir("dinov2_cli");
  const std::string model = " --checkpoint " + g + "/dinov2_tiny_reg4.pth --model-config " + g +
                            "/dinov2_tiny_reg4.json --image " + image;

  // 512x512 is not a multiple of 14: refused without --size, nothing written.
  EXPECT_EQ(run("features" + model + " --out " + dir + "/a.npy"), 1);
  EXPECT_FALSE(fs::exists(dir + "/a.npy"));
  // --size must be a multiple of 14; wrong model type fails on binding.
  EXPECT_EQ(run("features" + model + " --size 100 --out " + dir + "/b.npy"), 1);
  EXPECT_EQ(run("features --checkpoint " + g + "/dinov2_tiny_reg4.pth --model-type vits14" +
                " --image " + image + " --size 140 --out " + dir + "/c.npy"),
            1);
  EXPECT_FALSE(fs::exists(dir + "/b.npy"));
  EXPECT_FALSE(fs::exists(dir + "/c.npy"));

  ASSERT_EQ(run("features" + model + " --size 140 --out " + dir + "/f.npy"), 0);
  const at::Tensor f = nephroseg::io::read_npy(dir + "/f.npy");
  EXPECT_EQ(f.scalar_type(), at::kFloat);
  ASSERT_EQ(f.sizes(), (std::vector<int64_t>{100, 48}));
  // x_norm_patchtokens are LayerNorm outputs: finite, O(1).
  EXPECT_TRUE(at::isfinite(f).all().item<bool>());
  EXPECT_LT(f.abs().max().item<double>(), 100.0);
  // The command is exactly the library's patch_features on the RGB image.
  const cv::Mat rgb = nephroseg::io::read_image_rgb(image);
  const at::Tensor hwc = at::from_blob(rgb.data, {rgb.rows, rgb.cols, 3},
                                       {static_cast<int64_t>(rgb.step[0]), 3, 1}, at::kByte);
  const auto api = nephroseg::dinov2::Dinov2Model::load(
      g + "/dinov2_tiny_reg4.pth",
      nephroseg::dinov2::Dinov2Config::from_json(g + "/dinov2_tiny_reg4.json"));
  // (The CLI may run with another thread count: float noise only.)
  EXPECT_TENSOR_CLOSE(f, api->patch_features(hwc, /*size=*/140).tokens, 1e-5, "cli vs api");
}

}  // namespace
