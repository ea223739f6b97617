// Pillow-compatible resize: exact bytes against PIL outputs.
#include "nephroseg/core/resize.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <vector>

#include "nephroseg/core/error.h"
#include "support/golden.h"

namespace nephroseg {
namespace {

at::Tensor u8(const std::vector<int>& v, std::vector<int64_t> shape) {
  return at::tensor(v, at::kInt).to(at::kByte).view(shape);
}

// 5x7x3 test pattern: value (i * 37) % 256 over the flattened HWC buffer.
at::Tensor pattern() { return (at::arange(5 * 7 * 3, at::kInt) * 37).remainder(256).to(at::kByte).view({5, 7, 3}); }

TEST(PilResize, BilinearHandChecked) {
  // Downscale by 2: support widens to 2 input pixels each side. Output 0 has taps
  // (3, 3, 1)/7 on inputs (0, 100, 200) -> 71.43 -> 71; output 1 has (1, 3, 3)/7 on
  // (100, 200, 255) -> 209.3 -> 209 (PIL gives the same).
  const at::Tensor out = pil_resize(u8({0, 100, 200, 255}, {1, 4}), 1, 2, PilFilter::kBilinear);
  EXPECT_TRUE(out.equal(u8({71, 209}, {1, 2}))) << out;
}

TEST(PilResize, BicubicMatchesPillowDownAndUp) {
  // Expected bytes from Pillow 9.4: Image.fromarray(pattern).resize((4, 3), BICUBIC)
  // and .resize((9, 6), BICUBIC).
  const at::Tensor down = pil_resize(pattern(), 3, 4, PilFilter::kBicubic);
  EXPECT_TRUE(down.equal(u8({57, 87, 124, 169, 64, 105, 129, 170, 65, 110, 147, 177,
                              72, 102, 139, 189, 79, 120, 144, 190, 80, 125, 162, 197,
                              83, 117, 154, 116, 96, 135, 161, 117, 100, 140, 173, 124},
                             {3, 4, 3})))
      << down;
  const at::Tensor up = pil_resize(pattern(), 6, 9, PilFilter::kBicubic);
  const std::vector<int> up_ref = {
      0,   32,  69,  67,  123, 160, 174, 87,  124, 202, 10,  52,  77,  114, 151, 176, 218, 26,
      104, 141, 54,  68,  105, 161, 159, 196, 233, 2,   38,  75,  73,  129, 166, 180, 93,  130,
      208, 16,  58,  83,  120, 157, 182, 224, 32,  110, 147, 60,  74,  111, 167, 165, 202, 239,
      9,   46,  83,  81,  137, 174, 188, 101, 138, 216, 24,  66,  91,  128, 165, 190, 232, 40,
      118, 155, 68,  82,  119, 175, 173, 210, 248, 17,  54,  91,  88,  145, 182, 202, 109, 146,
      235, 31,  74,  99,  136, 173, 197, 251, 48,  126, 169, 75,  90,  126, 187, 181, 218, 255,
      25,  62,  99,  101, 153, 190, 176, 117, 154, 181, 41,  82,  107, 144, 181, 207, 197, 56,
      134, 143, 87,  98,  139, 172, 189, 226, 199, 31,  68,  105, 123, 159, 196, 82,  123, 160,
      1,   52,  88,  113, 150, 187, 218, 17,  62,  140, 49,  108, 104, 161, 111, 195, 232, 0};
  EXPECT_TRUE(up.equal(u8(up_ref, {6, 9, 3}))) << up;
}

TEST(PilResize, GoldenSamBilinearIsByteExact) {
  NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.ref.pt");
  const auto ref = test::load_ref_pt(test::shared_path("golden/models/sam_tiny.ref.pt"));
  const at::Tensor image = ref.at("image_rgb_u8");       // [77, 103, 3]
  const at::Tensor expected = ref.at("resized_image_u8");  // [120, 160, 3]
  const at::Tensor out = pil_resize(image, 120, 160, PilFilter::kBilinear);
  ASSERT_EQ(out.sizes(), expected.sizes());
  EXPECT_EQ(out.ne(expected).sum().item<int64_t>(), 0);
  // Strided input (a channel-reversed view) gives the same as its contiguous copy.
  const at::Tensor flipped = image.flip({2});
  EXPECT_TRUE(pil_resize(flipped, 120, 160, PilFilter::kBilinear)
                  .equal(pil_resize(flipped.contiguous(), 120, 160, PilFilter::kBilinear)));
}

TEST(PilResize, ShapesAndErrors) {
  const at::Tensor grey = at::zeros({4, 6}, at::kByte);
  EXPECT_EQ(pil_resize(grey, 8, 3, PilFilter::kBicubic).sizes(), (at::IntArrayRef{8, 3}));
  EXPECT_TRUE(pil_resize(pattern(), 5, 7, PilFilter::kBilinear).equal(pattern()));
  EXPECT_THROW(pil_resize(at::zeros({4, 6}), 2, 2, PilFilter::kBilinear), nephroseg::Error);
  EXPECT_THROW(pil_resize(grey, 0, 2, PilFilter::kBilinear), nephroseg::Error);
  EXPECT_THROW(pil_resize(at::zeros({4, 6, 5}, at::kByte), 2, 2, PilFilter::kBilinear),
               nephroseg::Error);
}

}  // namespace
}  // namespace nephroseg
