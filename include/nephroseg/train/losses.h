// nephroseg/train/losses.h: the GlomSAM training loss L = BCE + Dice + Boundary DoU.
//
// Every loss takes full-resolution logits z [B, 1, H, W] (float32, may require grad)
// and a ground truth g [B, 1, H, W] with values in {0, 1} (any integer, bool or float
// dtype). They return 0-dim float32 tensors that backpropagate to z.
// Thread-safety: pure functions.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "nephroseg/core/enum_names.h"

namespace nephroseg::train {

class Communicator;

/// Mean binary cross-entropy with logits over every pixel of the batch.
at::Tensor bce_with_logits_loss(const at::Tensor& logits, const at::Tensor& target);

/// MONAI (<= 1.4) DiceLoss(sigmoid=True, squared_pred=True, reduction="mean"): per image
/// D_b = 1 - (2 sum(p g) + smooth_nr) / (sum(p^2) + sum(g^2) + smooth_dr), p = sigmoid(z),
/// averaged over the batch.
at::Tensor dice_loss(const at::Tensor& logits, const at::Tensor& target,
                     double smooth_nr = 1e-5, double smooth_dr = 1e-5);

/// How the Boundary DoU loss counts boundary pixels C over a batch.
enum class BoundaryConvention {
  /// Each image's boundary map is computed on its own and summed (Sun et al.; spec §7).
  kPerImage,
  /// GlomSAM's released port: a (B,H,W) boundary map times the (B,1,H,W) target
  /// broadcasts to (B,B,H,W), so C also counts cross-image pairs when B > 1.
  kGlomSamBroadcast,
};

/// Names: "per_image", "glomsam_broadcast" (CLI --boundary, run configs).
inline const EnumNames<BoundaryConvention>& boundary_convention_names() {
  static const EnumNames<BoundaryConvention> names(
      "Boundary DoU convention", {{BoundaryConvention::kPerImage, "per_image", {}},
                                  {BoundaryConvention::kGlomSamBroadcast, "glomsam_broadcast", {}}});
  return names;
}

/// The batch-level terms of the Boundary DoU loss.
struct BoundaryDouTerms {
  int64_t boundary = 0;    // C
  int64_t foreground = 0;  // S
  double alpha_unclamped = 0.0;  // 1 - 2 (C + eps) / (S + eps)
  double alpha = 0.0;            // min(alpha_unclamped, 0.8)
};
BoundaryDouTerms boundary_dou_terms(const at::Tensor& target,
                                    BoundaryConvention convention = BoundaryConvention::kPerImage);
/// The terms from the counts C and S alone (how boundary_dou_terms finishes; used when
/// a batch is split across ranks and the counts are summed first).
BoundaryDouTerms boundary_dou_terms_from_counts(int64_t boundary, int64_t foreground);

/// Boundary DoU loss (Sun, Luo, Li, MICCAI 2023), pooled over the whole batch as in
/// GlomSAM: (Z + Y - 2I + eps) / (Z + Y - (1 + alpha) I + eps) with p = sigmoid(z),
/// I = sum(p g), Y = sum(g^2), Z = sum(p^2). alpha has no gradient.
at::Tensor boundary_dou_loss(const at::Tensor& logits, const at::Tensor& target,
                             BoundaryConvention convention = BoundaryConvention::kPerImage);

struct GlomSamLossOptions {
  double bce_weight = 1.0;
  double dice_weight = 1.0;
  double bdou_weight = 1.0;  // 0 = no Boundary DoU at all (ablation; bdou reported as 0)
  BoundaryConvention boundary = BoundaryConvention::kPerImage;
};

struct GlomSamLossTerms {
  at::Tensor total;  // weighted sum (0-dim, differentiable)
  at::Tensor bce, dice, bdou;
};

/// L = w_bce BCE + w_dice Dice + w_bdou BDoU (spec §7; weights 1:1:1 by default).
GlomSamLossTerms glomsam_loss(const at::Tensor& logits, const at::Tensor& target,
                              const GlomSamLossOptions& options = {});

/// The GlomSAM loss of one global batch split across ranks (data-parallel training).
/// Each rank passes its part (logits / target of b_r images) and share = b_r / m, m the
/// global batch size (0 for a rank with no images this step: it passes one image and
/// contributes nothing). One small all-reduce sums the ranks' loss terms, Boundary DoU
/// sums (Z, Y, I) and counts (C, S).
/// - `local` is differentiable: the sum over ranks of its gradients is the gradient of
///   the global batch's loss, so the trainer all-reduces gradients with a SUM. BCE
///   (pixel mean) and Dice (image mean) are weighted by share; Boundary DoU, pooled over
///   the whole batch, enters through dL/dZ Z_r + dL/dI I_r with the global dL/dZ, dL/dI.
/// - total, bce, dice, bdou are the global batch's values (the same on every rank), in
///   float64: equal to glomsam_loss on the whole batch up to float32 summation order.
/// Only the per_image Boundary DoU convention can be split (glomsam_broadcast throws).
struct ShardedLossTerms {
  at::Tensor local;  // 0-dim float32, differentiable
  double total = 0, bce = 0, dice = 0, bdou = 0;
};
ShardedLossTerms sharded_glomsam_loss(const at::Tensor& logits, const at::Tensor& target,
                                      const GlomSamLossOptions& options, double share, Communicator& comm);

}  // namespace nephroseg::train
