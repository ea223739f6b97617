// skimage_resize_cubic against scikit-image itself (Debian's python3-skimage, installed
// by scripts/setup.sh; the comparison is skipped with a message when it is missing).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "nephroseg/core/error.h"
#include "nephroseg/core/skimage_resize.h"

using namespace nephroseg;
namespace fs = std::filesystem;

namespace {

bool have_skimage() {
  return std::system("/usr/bin/python3 -c 'import skimage, numpy' > /dev/null 2>&1") == 0;
}

// A uint8 image with smooth structure, edges and noise, deterministic in seed.
at::Tensor test_image(int64_t h, int64_t w, int64_t c, uint64_t seed) {
  at::manual_seed(seed);
  const at::Tensor yy = at::arange(h, at::kDouble).view({h, 1, 1});
  const at::Tensor xx = at::arange(w, at::kDouble).view({1, w, 1});
  const at::Tensor ch = at::arange(c, at::kDouble).view({1, 1, c});
  at::Tensor v = 128 + 90 * at::sin(xx * 0.21 + ch) * at::cos(yy * 0.13 - ch * 0.5);
  v = v + 40 * (xx > w / 2).to(at::kDouble) - 20 * (yy > h / 3).to(at::kDouble);
  v = v + 12 * at::randn({h, w, c}, at::kDouble);
  return v.clamp(0, 255).to(at::kByte).contiguous();
}

// Runs skimage on `img` (written raw) and returns its uint8 result.
at::Tensor skimage_reference(const at::Tensor& img, int64_t oh, int64_t ow) {
  const fs::path dir = fs::temp_directory_path() / ("nephroseg_skimage_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string in = (dir / "in.raw").string(), out = (dir / "out.raw").string();
  {
    std::ofstream f(in, std::ios::binary);
    f.write(reinterpret_cast<const char*>(img.data_ptr<uint8_t>()), img.numel());
  }
  const std::string shape = img.dim() == 2
      ? std::to_string(img.size(0)) + "," + std::to_string(img.size(1))
      : std::to_string(img.size(0)) + "," + std::to_string(img.size(1)) + "," + std::to_string(img.size(2));
  const std::string cmd =
      "/usr/bin/python3 -c \"import numpy as np; from skimage import transform; "
      "a = np.fromfile('" + in + "', dtype=np.uint8).reshape((" + shape + ")); "
      "r = transform.resize(a, (" + std::to_string(oh) + ", " + std::to_string(ow) +
      "), order=3, preserve_range=True, anti_aliasing=True).astype(np.uint8); "
      "r.tofile('" + out + "')\"";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream f(out, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  fs::remove_all(dir);
  std::vector<int64_t> shape_out{oh, ow};
  if (img.dim() == 3) shape_out.push_back(img.size(2));
  at::Tensor t = at::empty(shape_out, at::kByte);
  EXPECT_EQ(static_cast<int64_t>(bytes.size()), t.numel());
  if (static_cast<int64_t>(bytes.size()) == t.numel()) std::memcpy(t.data_ptr<uint8_t>(), bytes.data(), bytes.size());
  return t;
}

}  // namespace

TEST(SkimageResize, MatchesScikitImageUpDownAndMixed) {
  if (!have_skimage()) GTEST_SKIP() << "python3-skimage is not installed (apt-get install python3-skimage)";
  struct Case { int64_t h, w, c, oh, ow; };
  // MedSAM's usual case (upscale to 1024), downscales with anti-aliasing, mixed, grey.
  const std::vector<Case> cases = {{300, 420, 3, 1024, 1024}, {1500, 1300, 3, 1024, 1024},
                                   {97, 203, 3, 256, 64},     {64, 48, 1, 91, 33},
                                   {40, 57, 2, 40, 57}};
  uint64_t seed = 1;
  for (const Case& k : cases) {
    const at::Tensor img = k.c == 1 ? test_image(k.h, k.w, 1, seed).squeeze(2).contiguous()
                                    : test_image(k.h, k.w, k.c, seed);
    ++seed;
    const at::Tensor ours = skimage_resize_cubic(img, k.oh, k.ow);
    const at::Tensor ref = skimage_reference(img, k.oh, k.ow);
    ASSERT_EQ(ours.sizes(), ref.sizes());
    const at::Tensor diff = (ours.to(at::kInt) - ref.to(at::kInt)).abs();
    const int64_t off = diff.gt(0).sum().item<int64_t>();
    // Truncation to uint8 turns last-bit float differences at integer boundaries into
    // off-by-one bytes; anything beyond that is a real difference.
    EXPECT_LE(diff.max().item<int>(), 1) << k.h << "x" << k.w << " -> " << k.oh << "x" << k.ow;
    EXPECT_LE(off, ours.numel() / 100000)
        << off << " of " << ours.numel() << " bytes differ, " << k.h << "x" << k.w << " -> " << k.oh << "x" << k.ow;
  }
}

TEST(SkimageResize, RejectsBadInput) {
  EXPECT_THROW(skimage_resize_cubic(at::zeros({4, 4}, at::kFloat), 8, 8), Error);
  EXPECT_THROW(skimage_resize_cubic(at::zeros({4}, at::kByte), 8, 8), Error);
  EXPECT_THROW(skimage_resize_cubic(at::zeros({0, 4}, at::kByte), 8, 8), Error);
  EXPECT_THROW(skimage_resize_cubic(at::zeros({4, 4}, at::kByte), 0, 8), Error);
  const at::Tensor flat = at::full({5, 7, 3}, 77, at::kByte);
  EXPECT_TRUE(at::equal(skimage_resize_cubic(flat, 11, 3), at::full({11, 3, 3}, 77, at::kByte)));
}
