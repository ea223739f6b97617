// src/models/glomsam/glomsam.h: the GlomSAM wrapper module (internal header).
// Children in the reference's registration order: image_encoder, mask_decoder,
// prompt_encoder, RoughMaskGenerator (spec §10; golden full_model.pth).
#pragma once

#include <torch/nn/module.h>

#include <vector>

#include "models/glomsam/image_encoder.h"
#include "models/sam/mask_decoder.h"
#include "models/sam/prompt_encoder.h"
#include "models/unet/unet.h"
#include "nephroseg/checkpoint/state_dict.h"
#include "nephroseg/glomsam/glomsam.h"

namespace nephroseg::models::glomsam {

/// The state dict in PyTorch's order: modules in pre-order, each module's own
/// parameters then its own buffers (checkpoint::state_dict_of lists all buffers last).
/// Shared (aliased) modules appear under every name, as in Python.
checkpoint::StateDict reference_state_dict(const torch::nn::Module& module);

struct GlomSamTrace {
  at::Tensor unet_input, unet_logits, rough_mask;
  EncoderTrace encoder;
  at::Tensor sparse_embeddings, dense_embeddings, dense_pe;
  sam::MaskDecoderDebug decoder;
  at::Tensor low_res_logits, iou_pred;
  at::Tensor logits;
};

// Ref: GlomSAM train.py / test.py::GlomSAM
class GlomSamImpl : public torch::nn::Module {
 public:
  explicit GlomSamImpl(const nephroseg::glomsam::GlomSamConfig& config);

  /// image [B, 3, S, S] in [0,1], boxes [B, 4] (x0, y0, x1, y1 pixels of S) or undefined
  /// (automatic box from the rough mask) -> logits [B, 1, S, S].
  at::Tensor forward(const at::Tensor& image, const at::Tensor& boxes);
  at::Tensor forward_traced(const at::Tensor& image, const at::Tensor& boxes, GlomSamTrace* trace);

  /// Rough mask logits [B, 1, 4g, 4g] (UNet on the image resized to S/2).
  at::Tensor rough_mask(const at::Tensor& image, at::Tensor* unet_input = nullptr,
                        at::Tensor* unet_logits = nullptr);

  /// Freezes as the spec recommends: ViT (patch_embed, pos_embed, blocks, neck) and
  /// the UNet get requires_grad(false); when freeze_unet the UNet also stays in eval
  /// mode through train(). freeze_vit = false leaves the ViT trainable (training from
  /// random initialisation).
  void freeze(bool freeze_unet = true, bool freeze_vit = true);
  /// Module::train override that keeps a frozen UNet in eval mode.
  void train(bool on = true) override;

  /// Parameters without the features.* duplicates (for optimisers), in state_dict order.
  std::vector<at::Tensor> unique_parameters() const;
  /// Same, with names (first name of each tensor).
  std::vector<std::pair<std::string, at::Tensor>> unique_named_parameters() const;

  const nephroseg::glomsam::GlomSamConfig& config() const { return config_; }

  GlomImageEncoder image_encoder{nullptr};
  sam::MaskDecoder mask_decoder{nullptr};
  sam::PromptEncoder prompt_encoder{nullptr};
  UNet RoughMaskGenerator{nullptr};  // null when config.rough_mask is false (ablation)

 private:
  nephroseg::glomsam::GlomSamConfig config_;
  bool unet_frozen_ = false;
};
TORCH_MODULE(GlomSam);

}  // namespace nephroseg::models::glomsam
