// nephroseg/dinov2/dinov2.h: DINOv2 vision transformers (ViT-S/B/L/g /14, with or
// without 4 register tokens) that load the official `dinov2_vit*14[_reg4]_pretrain.pth`
// files as published and reproduce facebookresearch/dinov2's forward pass.
//
// Usage:
//
//   auto model = nephroseg::dinov2::Dinov2Model::load(
//       "dinov2_vitg14_pretrain.pth", nephroseg::dinov2::Dinov2Config::preset("vitg14"));
//   // image: uint8 RGB [H, W, 3]; resized to 560x560 (PIL bicubic) first.
//   auto f = model->patch_features(image, /*size=*/560);
//   // f.tokens: float32 [1600, 1536], token k = patch (row k / 40, column k % 40).
//
// Thread-safety: a loaded model is immutable; every const method may be called from
// several threads at once (each call runs without autograd).
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nephroseg/core/precision.h"

namespace nephroseg::dinov2 {

/// Hyper-parameters of a DinoVisionTransformer (names as in the Python constructor).
/// Ref: dinov2/hub/backbones.py::_make_dinov2_model and
///      dinov2/models/vision_transformer.py::vit_small/base/large/giant2.
struct Dinov2Config {
  int64_t img_size = 518;   ///< pos_embed covers (img_size / patch_size)^2 patches
  int64_t patch_size = 14;
  int64_t in_chans = 3;
  int64_t embed_dim = 768;
  int64_t depth = 12;
  int64_t num_heads = 12;
  double mlp_ratio = 4.0;
  bool qkv_bias = true;
  bool proj_bias = true;
  bool ffn_bias = true;
  /// LayerScale init value; 0 disables LayerScale (no ls1/ls2.gamma keys).
  double init_values = 1.0;
  double layernorm_eps = 1e-6;
  /// "mlp" (fc1/fc2, ViT-S/B/L) or "swiglufused" (w12/w3, ViT-g).
  std::string ffn_layer = "mlp";
  int64_t num_register_tokens = 0;
  /// Position-embedding resampling: bicubic with antialias (reg4 models) or without.
  bool interpolate_antialias = false;
  /// Non-zero: resample with scale factor (grid + offset) / M (official 0.1);
  /// zero: resample to the output size (reg4 models).
  double interpolate_offset = 0.1;

  /// Patches per side of the learned pos_embed (img_size / patch_size, 37 officially).
  int64_t pos_embed_grid() const { return img_size / patch_size; }

  /// Official hub configurations: "vits14", "vitb14", "vitl14", "vitg14" and the
  /// same names with "_reg4". A leading "dinov2_" is accepted. Throws
  /// nephroseg::Error listing the valid names for anything else.
  static Dinov2Config preset(const std::string& name);
  /// The valid preset names, in the order above (without the "dinov2_" prefix).
  static std::vector<std::string> preset_names();
  /// Reads a JSON object with the fields above (missing fields keep their defaults;
  /// unknown fields, wrong types and block_chunks != 0 are errors naming the field,
  /// e.g. "config.depth"; init_values null means 0), or a golden model description
  /// whose "config" member is such an object (shared/golden/models/dinov2_tiny.json).
  static Dinov2Config from_json(const std::string& path);
  /// Same, from JSON text; `what` names the source in errors.
  static Dinov2Config from_json_text(const std::string& text, const std::string& what);
  /// Same, from a parsed object (the config itself).
  static Dinov2Config from_json_object(const nlohmann::json& object, const std::string& what);
  /// Every field above under its JSON name; from_json_object gives it back.
  nlohmann::json to_json_object() const;
  /// to_json_object() as text (2-space indent).
  std::string to_json() const;
  bool operator==(const Dinov2Config& other) const;
  bool operator!=(const Dinov2Config& other) const { return !(*this == other); }
  /// Throws nephroseg::Error if the values are inconsistent (e.g. embed_dim not
  /// divisible by num_heads, unknown ffn_layer).
  void validate() const;
};

/// Outputs of forward_features (Ref: DinoVisionTransformer.forward_features).
/// D = embed_dim, R = num_register_tokens, h = H / 14, w = W / 14.
struct Dinov2Output {
  at::Tensor x_norm_clstoken;     ///< float32 [B, D]
  at::Tensor x_norm_regtokens;    ///< float32 [B, R, D] (R may be 0)
  at::Tensor x_norm_patchtokens;  ///< float32 [B, h*w, D], row-major over the grid
  at::Tensor x_prenorm;           ///< float32 [B, 1 + R + h*w, D], before the final norm
  int64_t grid_h = 0;
  int64_t grid_w = 0;
};

/// One entry of get_intermediate_layers.
struct Dinov2IntermediateLayer {
  at::Tensor patch_tokens;  ///< [B, h*w, D], or [B, D, h, w] when reshape was asked
  at::Tensor cls_token;     ///< [B, D]
};

/// Normalised patch tokens of one image.
struct PatchFeatures {
  at::Tensor tokens;  ///< float32 [h*w, D], token k = patch (row k / w, column k % w)
  int64_t grid_h = 0;
  int64_t grid_w = 0;
};

/// A DINOv2 backbone with immutable weights.
class Dinov2Model {
 public:
  struct Impl;

  /// Builds the model for `config` and binds the checkpoint strictly (every key and
  /// shape must match). On a mismatch the checkpoint::BindError's first line says
  /// what the file holds (width, depth, FFN, registers, matching preset) against the
  /// config; the following lines list every missing, unexpected and mis-shaped key
  /// (also available as lists). Weights are not randomly initialised first (the
  /// global random generator is left as it was), and float32 tensors are adopted
  /// without a copy, so peak memory is about one checkpoint (4.5 GB for ViT-g/14).
  /// `precision` (core/precision.h) converts the blocks once, after binding: bf16 runs
  /// the Linear layers and attention in bfloat16, int8 quantizes the Linear layers;
  /// patch embedding, norms and the residual stream stay float32 and every output is
  /// float32. kAuto is resolved for this CPU.
  static std::shared_ptr<Dinov2Model> load(const std::string& checkpoint_path,
                                           const Dinov2Config& config,
                                           Precision precision = Precision::kFp32);
  /// A model with random weights seeded by `seed` (LibTorch's default layer
  /// initialisation; cls/pos/register tokens N(0, 0.02); mask_token 0). For
  /// benchmarks and tests: its outputs are meaningless.
  static std::shared_ptr<Dinov2Model> random(const Dinov2Config& config, uint64_t seed = 0,
                                             Precision precision = Precision::kFp32);

  ~Dinov2Model();
  Dinov2Model(const Dinov2Model&) = delete;
  Dinov2Model& operator=(const Dinov2Model&) = delete;

  const Dinov2Config& config() const;
  /// The precision the blocks run in (never kAuto).
  Precision precision() const;

  /// normalized_images: float32 [B, 3, H, W] (ImageNet-normalised RGB), H and W
  /// multiples of patch_size (any size: the position embedding is resampled).
  Dinov2Output forward_features(const at::Tensor& normalized_images) const;

  /// Outputs of the last `n` blocks (in block order), passed through the final norm
  /// when `norm`; cls and register tokens removed from patch_tokens.
  /// Ref: DinoVisionTransformer.get_intermediate_layers(x, n, reshape, True, norm).
  std::vector<Dinov2IntermediateLayer> get_intermediate_layers(const at::Tensor& normalized_images,
                                                               int64_t n = 1, bool reshape = false,
                                                               bool norm = true) const;
  /// Same, for the blocks whose 0-based indices are listed (returned in block order,
  /// as the reference does when n is a list).
  std::vector<Dinov2IntermediateLayer> get_intermediate_layers_at(
      const at::Tensor& normalized_images, const std::vector<int64_t>& block_indices,
      bool reshape = false, bool norm = true) const;

  /// Position embedding added for an input of grid_h x grid_w patches:
  /// float32 [1, 1 + grid_h*grid_w, D] (cls position first).
  at::Tensor interpolate_pos_encoding(int64_t grid_h, int64_t grid_w) const;
  /// Tokens entering the first block: [B, 1 + R + h*w, D] = [cls, registers, patches]
  /// (Ref: prepare_tokens_with_masks without masks).
  at::Tensor prepare_tokens(const at::Tensor& normalized_images) const;

  /// ImageNet preprocessing of one image: uint8 RGB [H, W, 3] (contiguous or not) ->
  /// float32 [1, 3, S, S] normalised with mean (0.485, 0.456, 0.406) and std
  /// (0.229, 0.224, 0.225) on [0, 1]. size > 0 resizes to size x size with
  /// PIL-compatible bicubic first (size must be a multiple of patch_size); size == 0
  /// keeps the image, whose sides must then be multiples of patch_size.
  at::Tensor preprocess(const at::Tensor& image_rgb_u8, int64_t size = 0) const;
  /// preprocess + forward_features -> x_norm_patchtokens of the single image.
  PatchFeatures patch_features(const at::Tensor& image_rgb_u8, int64_t size = 0) const;

  /// Every parameter/buffer key with its shape, in state-dict order (equal to the
  /// official checkpoint's keys).
  std::vector<std::pair<std::string, std::vector<int64_t>>> state_dict_shapes() const;

 private:
  explicit Dinov2Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  // Typed access to the torch module for tests and benchmarks:
  // src/models/dinov2/internal.h (not part of the public API).
  friend struct ModelAccess;
};

}  // namespace nephroseg::dinov2
