#include "nephroseg/glomsam/rough_boxes.h"

#include <ATen/ATen.h>
#include <opencv2/core.hpp>

#include <algorithm>

#include "models/glomsam/internal.h"
#include "models/glomsam/tiling.h"
#include "nephroseg/core/error.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/io/tensor_mat.h"

namespace nephroseg::glomsam {

namespace {

/// [H, W, 3] uint8 -> [3, H, W] float in [0, 1], as GlomSamModel::predict scales it.
at::Tensor image_tensor(const cv::Mat& rgb) {
  return io::mat_to_tensor(rgb).permute({2, 0, 1}).to(at::kFloat) * (1.0f / 255.0f);
}

/// UNet logits of one zero-padded S x S tile, resized to S x S: [S, S].
at::Tensor tile_logits(models::glomsam::GlomSamImpl& net, const at::Tensor& tile, int64_t S) {
  at::Tensor unet_logits;
  net.rough_mask(tile, nullptr, &unet_logits);
  return at::upsample_bilinear2d(unet_logits, {S, S}, /*align_corners=*/false)[0][0];
}

}  // namespace

cv::Mat rough_mask(const GlomSamModel& model, const cv::Mat& rgb, int64_t tile_overlap) {
  NEPHRO_CHECK(rgb.type() == CV_8UC3, "GlomSAM rough mask: expected an 8-bit RGB image");
  const int64_t S = model.config().sam.img_size;
  NEPHRO_CHECK(model.config().rough_mask, "GlomSAM rough mask: this model has no rough-mask generator (ablation ",
               model.config().ablation_label(), ")");
  NEPHRO_CHECK(tile_overlap >= 0 && tile_overlap < S, "GlomSAM rough mask: tile_overlap must be in [0, ", S, ")");
  const int64_t H = rgb.rows, W = rgb.cols;
  models::glomsam::GlomSamImpl& net = internal::module(model);
  const at::Tensor img = image_tensor(rgb);
  at::Tensor sum = at::zeros({H, W}, at::kFloat), count = at::zeros({H, W}, at::kFloat);
  at::NoGradGuard no_grad;
  for (int64_t y : detail::tile_starts(H, S, tile_overlap)) {
    for (int64_t x : detail::tile_starts(W, S, tile_overlap)) {
      const int64_t th = std::min(S, H - y), tw = std::min(S, W - x);
      at::Tensor tile = at::zeros({1, 3, S, S}, at::kFloat);
      tile[0].narrow(1, 0, th).narrow(2, 0, tw).copy_(img.narrow(1, y, th).narrow(2, x, tw));
      const at::Tensor logits = tile_logits(net, tile, S);
      sum.narrow(0, y, th).narrow(1, x, tw).add_(logits.narrow(0, 0, th).narrow(1, 0, tw));
      count.narrow(0, y, th).narrow(1, x, tw).add_(1.0f);
    }
  }
  return io::tensor_to_mat((sum / count).gt(0).to(at::kByte).contiguous());
}

std::vector<Box> component_boxes(const cv::Mat& mask, float margin, int min_area) {
  NEPHRO_CHECK(mask.type() == CV_8UC1, "component_boxes: expected a CV_8U single-channel mask");
  NEPHRO_CHECK(margin >= 0 && min_area >= 1, "component_boxes: margin must be >= 0 and min_area >= 1");
  const cv::Mat labels = io::label_instances(mask, 8);
  const int n = io::max_label(labels);
  std::vector<int> x0(n + 1, mask.cols), y0(n + 1, mask.rows), x1(n + 1, -1), y1(n + 1, -1), area(n + 1, 0);
  for (int y = 0; y < labels.rows; ++y)
    for (int x = 0; x < labels.cols; ++x) {
      const int l = labels.at<int>(y, x);
      if (l == 0) continue;
      x0[l] = std::min(x0[l], x), y0[l] = std::min(y0[l], y);
      x1[l] = std::max(x1[l], x), y1[l] = std::max(y1[l], y);
      ++area[l];
    }
  const float W = static_cast<float>(mask.cols), H = static_cast<float>(mask.rows);
  std::vector<Box> boxes;
  for (int l = 1; l <= n; ++l) {
    if (area[l] < min_area) continue;
    // A one-pixel-wide part with margin 0 still gets a box of positive size.
    boxes.push_back({std::max(0.f, x0[l] - margin), std::max(0.f, y0[l] - margin),
                     std::min(W, std::max(x1[l] + margin, x0[l] + 1.f)),
                     std::min(H, std::max(y1[l] + margin, y0[l] + 1.f))});
  }
  return boxes;
}

}  // namespace nephroseg::glomsam
