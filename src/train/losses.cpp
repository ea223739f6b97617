// Ref: GlomSAM train.py (loss sum), MONAI 1.4 losses/dice.py::DiceLoss,
//      sunfan-bvb/BoundaryDoULoss utils.py::BoundaryDoULoss._adaptive_size,
//      GlomSAM utils.py::BoundaryDoULoss
#include "nephroseg/train/losses.h"

#include <ATen/ATen.h>

#include "nephroseg/core/error.h"
#include "nephroseg/train/distributed.h"

namespace nephroseg::train {

namespace {

constexpr double kSmooth = 1e-5;

void check_pair(const at::Tensor& logits, const at::Tensor& target, const char* what) {
  NEPHRO_CHECK(logits.defined() && target.defined(), what, ": undefined tensor");
  NEPHRO_CHECK(logits.dim() == 4 && logits.size(1) == 1, what,
               ": logits must be [B, 1, H, W], got ", logits.sizes());
  NEPHRO_CHECK(target.sizes() == logits.sizes(), what, ": target shape ", target.sizes(),
               " differs from logits shape ", logits.sizes());
}

at::Tensor as_float(const at::Tensor& target, const at::Tensor& like) {
  return target.to(like.scalar_type());
}

// Boundary pixels: foreground pixels whose 3x3-cross sum (zero padded) is 1..4.
at::Tensor cross_sum(const at::Tensor& target_f) {  // [B, 1, H, W] float
  at::Tensor kernel =
      at::tensor({0.f, 1.f, 0.f, 1.f, 1.f, 1.f, 0.f, 1.f, 0.f}, target_f.options()).view({1, 1, 3, 3});
  return at::conv2d(target_f, kernel, /*bias=*/{}, /*stride=*/1, /*padding=*/1);  // [B,1,H,W]
}

int64_t count_boundary(const at::Tensor& y) {
  return ((y != 0) & (y != 5)).sum().item<int64_t>();
}

// alpha > 0.8 is replaced by the Python float 0.8; otherwise it stays a float32 value.
double one_plus_alpha_of(const BoundaryDouTerms& terms) {
  return terms.alpha_unclamped > 0.8 ? 1.8 : static_cast<double>(1.0f + static_cast<float>(terms.alpha));
}

}  // namespace

at::Tensor bce_with_logits_loss(const at::Tensor& logits, const at::Tensor& target) {
  check_pair(logits, target, "bce_with_logits_loss");
  return at::binary_cross_entropy_with_logits(logits, as_float(target, logits), /*weight=*/{},
                                              /*pos_weight=*/{}, at::Reduction::Mean);
}

at::Tensor dice_loss(const at::Tensor& logits, const at::Tensor& target, double smooth_nr,
                     double smooth_dr) {
  check_pair(logits, target, "dice_loss");
  const at::Tensor p = at::sigmoid(logits);
  const at::Tensor g = as_float(target, logits);
  const std::vector<int64_t> spatial{2, 3};
  at::Tensor intersection = (g * p).sum(spatial);        // [B, 1]
  at::Tensor ground_o = (g * g).sum(spatial);            // [B, 1]
  at::Tensor pred_o = (p * p).sum(spatial);              // [B, 1]
  at::Tensor f = 1.0 - (2.0 * intersection + smooth_nr) / (ground_o + pred_o + smooth_dr);
  return f.mean();
}

BoundaryDouTerms boundary_dou_terms(const at::Tensor& target, BoundaryConvention convention) {
  NEPHRO_CHECK(target.dim() == 4 && target.size(1) == 1,
               "boundary_dou_terms: target must be [B, 1, H, W], got ", target.sizes());
  at::NoGradGuard no_grad;
  const at::Tensor g = target.to(at::kFloat);
  const at::Tensor conv = cross_sum(g);  // [B, 1, H, W]
  BoundaryDouTerms t;
  if (convention == BoundaryConvention::kPerImage) {
    t.boundary = count_boundary(conv * g);
  } else {
    // (B,H,W) * (B,1,H,W) -> (B,B,H,W), as the released port computes it.
    t.boundary = count_boundary(conv.squeeze(1) * g);
  }
  return boundary_dou_terms_from_counts(t.boundary, (g != 0).sum().item<int64_t>());
}

BoundaryDouTerms boundary_dou_terms_from_counts(int64_t boundary, int64_t foreground) {
  BoundaryDouTerms t;
  t.boundary = boundary;
  t.foreground = foreground;
  // float32 arithmetic, as the reference (int64 tensor + Python float -> float32).
  at::Tensor c = at::scalar_tensor(static_cast<double>(t.boundary), at::kFloat);
  at::Tensor s = at::scalar_tensor(static_cast<double>(t.foreground), at::kFloat);
  at::Tensor alpha = 1.0 - (c + kSmooth) / (s + kSmooth);
  alpha = 2.0 * alpha - 1.0;
  t.alpha_unclamped = alpha.item<float>();
  t.alpha = t.alpha_unclamped > 0.8 ? 0.8 : t.alpha_unclamped;
  return t;
}

at::Tensor boundary_dou_loss(const at::Tensor& logits, const at::Tensor& target,
                             BoundaryConvention convention) {
  check_pair(logits, target, "boundary_dou_loss");
  const BoundaryDouTerms terms = boundary_dou_terms(target, convention);
  const at::Tensor score = at::sigmoid(logits);
  const at::Tensor g = as_float(target, logits);
  at::Tensor intersect = (score * g).sum();
  at::Tensor y_sum = (g * g).sum();
  at::Tensor z_sum = (score * score).sum();
  const double one_plus_alpha = one_plus_alpha_of(terms);
  return (z_sum + y_sum - 2.0 * intersect + kSmooth) /
         (z_sum + y_sum - one_plus_alpha * intersect + kSmooth);
}

GlomSamLossTerms glomsam_loss(const at::Tensor& logits, const at::Tensor& target,
                              const GlomSamLossOptions& options) {
  GlomSamLossTerms t;
  t.bce = bce_with_logits_loss(logits, target);
  t.dice = dice_loss(logits, target);
  if (options.bdou_weight == 0.0) {
    // Ablation no_boundary_loss: the term is not computed at all.
    t.bdou = at::zeros({}, logits.options());
    t.total = t.bce * options.bce_weight + t.dice * options.dice_weight;
    return t;
  }
  t.bdou = boundary_dou_loss(logits, target, options.boundary);
  t.total = t.bce * options.bce_weight + t.dice * options.dice_weight + t.bdou * options.bdou_weight;
  if (options.bce_weight == 1.0 && options.dice_weight == 1.0 && options.bdou_weight == 1.0) {
    t.total = t.bce + t.dice + t.bdou;  // bitwise the reference sum
  }
  return t;
}

ShardedLossTerms sharded_glomsam_loss(const at::Tensor& logits, const at::Tensor& target,
                                      const GlomSamLossOptions& options, double share, Communicator& comm) {
  NEPHRO_CHECK(options.boundary == BoundaryConvention::kPerImage,
               "sharded_glomsam_loss: the glomsam_broadcast Boundary DoU convention pairs every two images of a "
               "batch and cannot be split across ranks; use per_image");
  NEPHRO_CHECK(share >= 0.0 && share <= 1.0, "sharded_glomsam_loss: share must be in [0, 1], got ", share);
  check_pair(logits, target, "sharded_glomsam_loss");
  const double active = share > 0.0 ? 1.0 : 0.0;
  const at::Tensor bce = bce_with_logits_loss(logits, target);  // mean over this rank's pixels
  const at::Tensor dice = dice_loss(logits, target);            // mean over this rank's images
  // Boundary DoU pools the whole batch: its sums and counts are summed over ranks first.
  const at::Tensor score = at::sigmoid(logits);
  const at::Tensor g = as_float(target, logits);
  const at::Tensor intersect = (score * g).sum();
  const at::Tensor z_sum = (score * score).sum();
  at::Tensor sums;
  at::Tensor counts;
  {
    at::NoGradGuard no_grad;
    const double y_sum = (g * g).sum().item<double>();
    const BoundaryDouTerms local = boundary_dou_terms(target, BoundaryConvention::kPerImage);
    sums = at::stack({bce.to(at::kDouble) * share, dice.to(at::kDouble) * share, z_sum.to(at::kDouble) * active,
                      at::scalar_tensor(y_sum * active, at::kDouble), intersect.to(at::kDouble) * active});
    counts = at::tensor({active > 0 ? local.boundary : 0, active > 0 ? local.foreground : 0}, at::kLong);
  }
  comm.all_reduce_sum({sums, counts});
  const auto s = sums.accessor<double, 1>();
  const auto c = counts.accessor<int64_t, 1>();
  const double z = s[2], y = s[3], i = s[4];
  const double a1 = one_plus_alpha_of(boundary_dou_terms_from_counts(c[0], c[1]));
  // L = N / D with N = Z + Y - 2I + eps, D = Z + Y - (1 + alpha) I + eps; Y and alpha
  // carry no gradient. dL/dZ = (D - N) / D^2, dL/dI = ((1 + alpha) N - 2 D) / D^2, so
  // dL/dZ * Z_r + dL/dI * I_r summed over ranks has the gradient of L.
  const double num = z + y - 2.0 * i + kSmooth;
  const double den = z + y - a1 * i + kSmooth;
  const double dl_dz = (den - num) / (den * den);
  const double dl_di = (a1 * num - 2.0 * den) / (den * den);
  const at::Tensor bdou_part = (z_sum * dl_dz + intersect * dl_di) * active;
  ShardedLossTerms t;
  t.local = bce * (share * options.bce_weight) + dice * (share * options.dice_weight) +
            bdou_part * options.bdou_weight;
  t.bce = s[0];
  t.dice = s[1];
  t.bdou = num / den;
  t.total = t.bce * options.bce_weight + t.dice * options.dice_weight + t.bdou * options.bdou_weight;
  return t;
}

}  // namespace nephroseg::train
