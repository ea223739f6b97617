#include "models/dinov2/patch_embed.h"

#include <ATen/ATen.h>

#include "nephroseg/core/error.h"

namespace nephroseg::dinov2 {

PatchEmbedImpl::PatchEmbedImpl(const PatchEmbedOptions& options) : options_(options) {
  proj_ = register_module(
      "proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(options.in_chans, options.embed_dim,
                                                         options.patch_size)
                                    .stride(options.patch_size)
                                    .bias(true)));
}

// Ref: dinov2/layers/patch_embed.py::PatchEmbed.forward
at::Tensor PatchEmbedImpl::forward(const at::Tensor& x) {
  const int64_t p = options_.patch_size;
  NEPHRO_CHECK(x.dim() == 4 && x.size(1) == options_.in_chans,
               "DINOv2 patch embed: expected images [B, ", options_.in_chans,
               ", H, W], got ", x.sizes());
  NEPHRO_CHECK(x.size(2) % p == 0 && x.size(3) % p == 0,
               "DINOv2 patch embed: image height ", x.size(2), " and width ", x.size(3),
               " must be multiples of the patch size ", p);
  at::Tensor y = proj_->forward(x);  // [B, D, h, w]
  return y.flatten(2).transpose(1, 2);  // [B, h*w, D]
}

}  // namespace nephroseg::dinov2
