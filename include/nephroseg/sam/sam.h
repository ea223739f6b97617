// nephroseg/sam/sam.h: Segment Anything (SAM ViT-B/L/H) and MedSAM inference.
//
// SamModel holds immutable weights; encode() runs the image encoder once per image
// and returns an ImageEmbedding that any number of prompts can reuse.
//
//   auto model = nephroseg::sam::SamModel::load("sam_vit_b_01ec64.pth",
//                                               nephroseg::sam::SamConfig::vit_b());
//   at::Tensor rgb = ...;                              // [H, W, 3] uint8, RGB
//   auto emb = model->encode(rgb);                     // one encoder pass
//   nephroseg::sam::SamPrompt prompt;
//   prompt.points = {{120.f, 80.f}};                   // original-image pixels (x, y)
//   prompt.labels = {1};                               // 1 foreground, 0 background
//   prompt.multimask = true;
//   auto result = model->predict(emb, prompt);         // masks [3, H, W] bool
//
// Thread-safety: a SamModel may be shared between threads; encode() and predict()
// are const and keep no state (each call runs under no-grad). ImageEmbedding is a
// value: share it read-only or copy it.
//
// Parity: with the official checkpoints, masks, IoU predictions and low-res logits
// reproduce segment-anything's SamPredictor (PIL bilinear resize included) to float32
// noise. MedSAM's skimage resize is reproduced (core/skimage_resize.h).
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nephroseg/core/enum_names.h"
#include "nephroseg/core/precision.h"

namespace nephroseg::sam {

/// How images are turned into encoder input and masks into outputs.
enum class SamPreprocess {
  /// segment-anything SamPredictor: longest side -> img_size with PIL bilinear,
  /// (x - pixel_mean) / pixel_std, zero-pad bottom/right; masks = logits > threshold.
  kSam,
  /// MedSAM inference script: resize to img_size x img_size ignoring the aspect
  /// ratio (skimage's order-3 anti-aliased resize, reproduced by
  /// nephroseg::skimage_resize_cubic and tested against scikit-image),
  /// min-max normalise over the whole image to [0, 1], no mean/std, no padding;
  /// box prompts only; masks = bilinear(sigmoid(low-res logits)) > 0.5.
  kMedSam,
};

/// The one name table of SamPreprocess: "sam" | "medsam" (config files, CLI).
const EnumNames<SamPreprocess>& preprocess_names();

/// Model hyper-parameters. Field names follow segment-anything's build_sam.py and
/// the `config` object of golden/models/sam_tiny.json. Nothing else in the model is
/// hard-coded: the grid, low-res mask size and rel-pos table sizes derive from here.
struct SamConfig {
  std::string name = "vit_b";
  // Image encoder (ImageEncoderViT).
  int64_t img_size = 1024;
  int64_t patch_size = 16;
  int64_t encoder_embed_dim = 768;
  int64_t encoder_depth = 12;
  int64_t encoder_num_heads = 12;
  std::vector<int64_t> encoder_global_attn_indexes = {2, 5, 8, 11};
  int64_t window_size = 14;
  double mlp_ratio = 4.0;
  bool use_rel_pos = true;
  bool qkv_bias = true;
  double layernorm_eps = 1e-6;
  // Prompt encoder and mask decoder.
  int64_t prompt_embed_dim = 256;
  int64_t mask_in_chans = 16;
  int64_t decoder_depth = 2;
  int64_t decoder_num_heads = 8;
  int64_t decoder_mlp_dim = 2048;
  int64_t attention_downsample_rate = 2;
  int64_t num_multimask_outputs = 3;
  int64_t iou_head_depth = 3;
  int64_t iou_head_hidden_dim = 256;
  // Pre/post-processing.
  std::array<double, 3> pixel_mean = {123.675, 116.28, 103.53};
  std::array<double, 3> pixel_std = {58.395, 57.12, 57.375};
  double mask_threshold = 0.0;
  SamPreprocess preprocess = SamPreprocess::kSam;

  /// Image-embedding grid side (img_size / patch_size; 64 for the official models).
  int64_t grid_size() const { return img_size / patch_size; }
  /// Low-res mask side (4 x grid; 256 for the official models).
  int64_t low_res_size() const { return 4 * grid_size(); }
  /// Throws nephroseg::Error naming the first inconsistent field.
  void validate() const;

  static SamConfig vit_b();
  static SamConfig vit_l();
  static SamConfig vit_h();
  /// MedSAM: vit_b layout with SamPreprocess::kMedSam.
  static SamConfig medsam();
  /// "vit_b" | "vit_l" | "vit_h" | "medsam"; throws on other names.
  static SamConfig preset(const std::string& name);
  /// Reads a JSON file holding either the config object itself or an object with a
  /// "config" member (e.g. golden/models/sam_tiny.json). Missing fields keep the
  /// vit_b defaults (name: the file's path); optional "preprocess": "sam" | "medsam";
  /// unknown fields, wrong types and unknown enum names are errors naming the field
  /// ("config.encoder_depth"). The result is validated.
  static SamConfig from_json(const std::string& path);
  /// Same, from JSON text; `what` names the source in errors.
  static SamConfig from_json_text(const std::string& text, const std::string& what);
  /// Same, from a parsed object (the config itself; `what` names it in errors).
  static SamConfig from_json_object(const nlohmann::json& object, const std::string& what);
  /// Every field above under its JSON name (from_json_object(to_json_object())
  /// gives back an equal config).
  nlohmann::json to_json_object() const;
  /// to_json_object() as text (2-space indent).
  std::string to_json() const;

  bool operator==(const SamConfig& other) const;
  bool operator!=(const SamConfig& other) const { return !(*this == other); }
};

/// The encoder output for one image plus the geometry needed to map prompts and
/// masks between the original image and the model frame.
struct ImageEmbedding {
  at::Tensor embedding;               // [1, prompt_embed_dim, grid, grid] float32
  std::array<int64_t, 2> original_size{};  // (H, W) of the image given to encode()
  std::array<int64_t, 2> input_size{};     // (h, w) after resizing, before padding
  double encode_seconds = 0.0;             // wall time of the encoder pass
};

/// A prompt for one mask query. Coordinates are in ORIGINAL image pixels (x right,
/// y down; the reference adds 0.5 internally, so (0, 0) is the top-left pixel).
struct SamPrompt {
  std::vector<std::array<float, 2>> points;  // (x, y) each, inside [0, W] x [0, H]
  std::vector<int> labels;                   // per point: 1 foreground, 0 background,
                                             // -1 ignored (not-a-point)
  std::optional<std::array<float, 4>> box;   // (x0, y0, x1, y1), x0 <= x1, y0 <= y1
  at::Tensor mask_input;  // optional [1, low_res, low_res] float32 logits (e.g. a
                          // previous result's low_res_logits[k].unsqueeze(0))
  bool multimask = false;  // true: num_multimask_outputs masks, false: one mask
};

/// Result of one prompt (predict) or a batch of boxes (predict_boxes, where every
/// tensor gains a leading batch dimension B).
struct SamResult {
  at::Tensor masks;           // [C, H, W] bool (original image size)
  at::Tensor iou;             // [C] float32 predicted IoU
  at::Tensor low_res_logits;  // [C, low_res, low_res] float32 decoder logits
  at::Tensor mask_logits;     // [C, H, W] float32; masks == (mask_logits > threshold).
                              // MedSAM: logit of the resized probability (so > 0).
  double seconds = 0.0;       // wall time of prompt encoder + decoder + postprocess
  /// Index of the mask with the highest predicted IoU (first batch entry).
  int64_t best_index() const;
};

class SamModel {
 public:
  /// Loads weights from an official checkpoint (bare state dict or {"model": ...})
  /// and binds them strictly: a file whose keys or shapes do not fit `config` gives
  /// checkpoint::BindError (a nephroseg::Error) listing the missing/unexpected/
  /// mismatched keys. The encoder's layers are not randomly initialised first, and
  /// LibTorch's global random generator is left as it was.
  /// `precision` (core/precision.h) converts the image encoder once, after binding:
  /// bf16 runs its Linear layers and attention in bfloat16, int8 quantizes its Linear
  /// layers; the prompt encoder, mask decoder and post-processing stay float32, and
  /// the embedding is float32 in every precision. kAuto is resolved for this CPU.
  static std::shared_ptr<SamModel> load(const std::string& checkpoint, const SamConfig& config,
                                        Precision precision = Precision::kFp32);
  /// A model with random weights (benchmarks, shape tests). Deterministic in `seed`.
  static std::shared_ptr<SamModel> random(const SamConfig& config, uint64_t seed = 0,
                                          Precision precision = Precision::kFp32);

  const SamConfig& config() const;
  /// The precision the image encoder runs in (never kAuto).
  Precision precision() const;

  /// Encodes one image: [H, W, 3] uint8 RGB (or [H, W] grey, replicated to 3
  /// channels), CPU, any strides.
  ImageEmbedding encode(const at::Tensor& image_rgb_u8) const;

  /// Runs prompt encoder + mask decoder + postprocessing for one prompt. At least one
  /// of points, box, mask_input is required; points must lie inside the image,
  /// labels must be -1/0/1 with one per point, mask_input must be [1, low_res,
  /// low_res]. MedSAM models accept a box only.
  SamResult predict(const ImageEmbedding& embedding, const SamPrompt& prompt) const;

  /// Batch of box prompts ([B, 4] float, XYXY in original pixels) in one decoder
  /// pass. Result tensors are [B, C, ...]; iou is [B, C].
  SamResult predict_boxes(const ImageEmbedding& embedding, const at::Tensor& boxes,
                          bool multimask) const;

  ~SamModel();
  SamModel(const SamModel&) = delete;
  SamModel& operator=(const SamModel&) = delete;

  struct Impl;

 private:
  explicit SamModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  // Typed access to the torch module for tests and benchmarks:
  // src/models/sam/internal.h (not part of the public API).
  friend struct ModelAccess;
};

}  // namespace nephroseg::sam
