// nephroseg/glomsam/glomsam.h: GlomSAM (Pan et al., PLoS ONE 2025), a SAM ViT-B with
// a per-block EVP prompt generator, a ResNet branch fused by squeeze-and-excitation,
// a UNet rough-mask prompt and a box prompt. Spec: specs/glomsam.md.
//
//   auto model = nephroseg::glomsam::GlomSamModel::load("glomsam_best.pth");
//   cv::Mat rgb = nephroseg::io::read_image_rgb("patch.png");   // any size, RGB
//   nephroseg::glomsam::PredictOptions po;                       // auto box from UNet
//   auto result = model->predict(rgb, po);                       // result.mask CV_8U 0/1
//
// Input convention: RGB uint8 scaled by float32(1/255) to [0,1]; no mean/std anywhere
// (the ResNet branch included), as in the reference. Boxes are (x0, y0, x1, y1) pixels.
// Thread-safety: predict()/forward() are const and run under no-grad; a model may be
// shared between threads for inference. Training uses train::GlomSamTrainer.
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
#include "nephroseg/sam/sam.h"

namespace cv {
class Mat;
}

namespace nephroseg::glomsam {

/// Embedding-feature token order of the prompt generator (spec §3.2, §9 #6).
enum class TokenOrder { kReference, kPerToken };

/// The one name table of TokenOrder: "reference" | "per_token" (configs, CLI).
const EnumNames<TokenOrder>& token_order_names();

/// The rows of the paper's ablation (Table 4): the full model, each component
/// removed on its own, and the MedSAM baseline (all four removed: ViT, neck, prompt
/// encoder and mask decoder only, MedSAM's exact key set).
enum class AblationRow { kFull, kNoBoundaryLoss, kNoRoughMask, kNoPromptGenerator, kNoCnnBranch, kMedSam };

/// The one name table of AblationRow: "full" | "no_boundary_loss" | "no_rough_mask" |
/// "no_prompt_generator" | "no_cnn_branch" | "medsam" (dashes accepted; CLI --ablation).
const EnumNames<AblationRow>& ablation_row_names();

struct GlomSamConfig {
  /// ViT, prompt encoder and mask decoder sizes (SAM field names).
  sam::SamConfig sam = sam::SamConfig::vit_b();
  // Prompt generator (EVP / SAM-Adapter).
  int64_t pg_scale_factor = 32;
  double pg_freq_ratio = 0.25;
  TokenOrder token_order = TokenOrder::kReference;
  // CNN branch: torchvision ResNet with Bottleneck blocks.
  std::vector<int64_t> resnet_layers{3, 4, 23, 3};
  int64_t resnet_stem_width = 64;
  int64_t resnet_num_classes = 1000;  // fc is kept (checkpoint keys) but never used
  bool resnet_basic_block = false;    // true for resnet18/34 layouts
  int64_t cnn_chans = 256;            // adapter output; must equal sam.prompt_embed_dim
  int64_t se_reduction = 16;
  bool feature_aliases = true;        // cnn_branch.features.* keys, as official files
  // Rough mask generator (UNet).
  std::vector<int64_t> unet_features{64, 128, 256, 512};
  /// Threshold on the *logit* for binary masks (reference: 0.5; 0.0 = sigmoid > 0.5).
  double mask_threshold = 0.5;
  // Ablation switches (paper Table 4). false removes the component: its modules are
  // not built (no parameters, no checkpoint keys, no compute); the keys that remain
  // keep their official names. Stored in the checkpoint's config ("boundary_loss",
  // "rough_mask", "prompt_generator", "cnn_branch"; written only when one is false).
  bool boundary_loss = true;     ///< training loss BCE + Dice (+ Boundary DoU)
  bool rough_mask = true;        ///< UNet dense mask prompt; false: SAM's no_mask_embed
  bool prompt_generator = true;  ///< EVP prompts added before every ViT block
  bool cnn_branch = true;        ///< ResNet + SE fusion; false: neck output straight to the decoder

  /// True when no component is removed.
  bool is_full() const { return boundary_loss && rough_mask && prompt_generator && cnn_branch; }
  /// Sets the four switches to a Table 4 row (kFull turns them all on).
  void apply_ablation(AblationRow row);
  /// The Table 4 row these switches form, if any (e.g. none for two components removed).
  std::optional<AblationRow> ablation_row() const;
  /// "full", a row name, or the removed components joined by "+" ("no_rough_mask+no_cnn_branch").
  std::string ablation_label() const;

  int64_t grid_size() const { return sam.grid_size(); }
  /// UNet input side (the reference's 512 = img_size / 2).
  int64_t unet_input_size() const { return sam.img_size / 2; }
  /// Mask-prompt side (the reference's 256 = 4 * grid).
  int64_t mask_input_size() const { return sam.low_res_size(); }
  void validate() const;

  /// Full size: ViT-B, ResNet101, UNet [64..512] (spec §1).
  static GlomSamConfig official();
  /// The tiny configuration of golden/glomsam (img 160, embed 48, depth 4, ...).
  static GlomSamConfig tiny();
  /// "official" | "vit_b" | "tiny"; or a JSON file (see from_json).
  static GlomSamConfig preset(const std::string& name);
  /// Reads {"config": {...}} or the object itself, with the golden JSON field names
  /// (img_size, encoder_embed_dim, ..., pg_scale_factor, resnet_layers, unet_features).
  /// Missing fields keep official(); the SAM fields are read by SAM's reader
  /// (out_chans = prompt_embed_dim, pg_freq_nums = pg_freq_ratio; name, unet_in
  /// and mask_in are informative). Unknown fields, wrong types and unknown
  /// token_order names are errors naming the field ("config.token_order").
  static GlomSamConfig from_json(const std::string& path);
  /// Same, from JSON text (`what` names the source in errors).
  static GlomSamConfig from_json_text(const std::string& text, const std::string& what);
  /// Same, from a parsed object (the config itself, or one with a "config" member).
  static GlomSamConfig from_json_object(const nlohmann::json& object, const std::string& what);
  /// The fields above (SAM architecture fields flat, as in the golden files);
  /// from_json_object gives back an equal config (except sam.name, not stored).
  nlohmann::json to_json_object() const;
  /// to_json_object() as text (2-space indent; what the trainer stores).
  std::string to_json() const;
};

/// A box (x0, y0, x1, y1) in pixels of the model input.
using Box = std::array<float, 4>;

/// The box prompt from a GT mask (spec §6): union bounding box of all foreground
/// pixels (max = last foreground index), each side moved outward by jitter[k] pixels
/// (order x0, x1, y0, y1, as MyDataset draws them), clipped to [0, W] x [0, H].
/// An empty mask gives the full image box [0, 0, W, H].
Box box_from_mask(const at::Tensor& mask_hw, const std::array<int64_t, 4>& jitter = {0, 0, 0, 0});
/// Box from rough-mask logits [H, W]: union box of logits > 0 enlarged by `margin`,
/// or the full image when nothing is positive.
Box box_from_logits(const at::Tensor& logits_hw, float margin = 10.f);

struct PredictOptions {
  std::optional<Box> box;  ///< in original-image pixels; unset = automatic (rough mask)
  int64_t tile_overlap = 128;  ///< pixels of overlap between 1024 tiles for large images
  bool auto_box_per_tile = true;
};

struct PredictResult {
  at::Tensor logits;  ///< [H, W] float32, stitched
  at::Tensor mask;    ///< [H, W] uint8 0/1 (logits > config.mask_threshold)
  std::vector<Box> boxes;  ///< box used per tile
  double seconds = 0.0;
};

/// The ablation switches of paper Table 4 as a user gives them (`--ablation ROW` and
/// the --no-* flags on top of it); `glomsam train`, `predict` and `eval` share them.
struct AblationSwitches {
  std::string row;  // empty = keep the config's own switches
  bool no_boundary_loss = false, no_rough_mask = false, no_prompt_generator = false, no_cnn_branch = false;

  bool any() const {
    return !row.empty() || no_boundary_loss || no_rough_mask || no_prompt_generator || no_cnn_branch;
  }
  /// Applies the switches to `config`; an unknown row is an error naming --ablation.
  void apply(glomsam::GlomSamConfig& config) const {
    if (!row.empty()) config.apply_ablation(glomsam::ablation_row_names().parse(row, "--ablation"));
    if (no_boundary_loss) config.boundary_loss = false;
    if (no_rough_mask) config.rough_mask = false;
    if (no_prompt_generator) config.prompt_generator = false;
    if (no_cnn_branch) config.cnn_branch = false;
    config.validate();
  }
};

class GlomSamModel {
 public:
  /// Random initialisation (each module's reference init). Deterministic in seed.
  /// `precision` as in load (benchmarks; training needs kFp32).
  static std::shared_ptr<GlomSamModel> create(const GlomSamConfig& config, uint64_t seed = 0,
                                              Precision precision = Precision::kFp32);
  /// Loads a GlomSAM checkpoint (bare state dict or {"model": ...}); `config` must fit
  /// (else checkpoint::BindError listing the keys). The `features.*` aliases may be
  /// absent from the file. The big layers are not randomly initialised first and the
  /// global random generator is left as it was.
  /// `precision` (core/precision.h) converts the ViT blocks of the image encoder once,
  /// after binding: bf16 runs their Linear layers and attention in bfloat16, int8
  /// quantizes their Linear layers. The prompt generator, CNN branch, fusion, UNet,
  /// prompt encoder and mask decoder stay float32. kAuto is resolved for this CPU.
  /// Inference only: a converted model cannot be trained or saved.
  static std::shared_ptr<GlomSamModel> load(const std::string& checkpoint,
                                            const GlomSamConfig& config = GlomSamConfig::official(),
                                            Precision precision = Precision::kFp32);
  /// The config stored by the trainer in a checkpoint's "config" entry, if any.
  static std::optional<GlomSamConfig> stored_config(const std::string& checkpoint);
  /// The one rule for a checkpoint's config: `spec` "auto" (or "") = the config the
  /// trainer stored in the file, else the official one; otherwise a preset name
  /// ("official" | "tiny") or a JSON file (GlomSamConfig::preset).
  static GlomSamConfig config_for(const std::string& checkpoint, const std::string& spec = "auto");
  /// Loads image encoder ViT + prompt encoder + mask decoder from a SAM/MedSAM file,
  /// the ResNet trunk from a torchvision file and the UNet from a RoughMaskGenerator
  /// file ({"state_dict": ...}); empty paths keep the random init.
  void load_initial_weights(const std::string& sam_checkpoint, const std::string& resnet_checkpoint,
                            const std::string& unet_checkpoint);
  /// Writes the state dict (official key names, aliases included) as a PyTorch file.
  void save(const std::string& path) const;

  const GlomSamConfig& config() const;
  /// The precision the ViT blocks run in (never kAuto).
  Precision precision() const;

  /// images [B, 3, S, S] float in [0,1] (S = img_size), boxes [B, 4] -> logits [B, 1, S, S].
  /// Undefined boxes = automatic boxes from the rough mask.
  at::Tensor forward(const at::Tensor& images, const at::Tensor& boxes) const;
  /// Whole-image inference: RGB uint8 image of any size. Images larger than img_size
  /// are tiled with overlap and stitched (mean of overlapping logits); smaller ones are
  /// zero-padded.
  PredictResult predict(const cv::Mat& rgb, const PredictOptions& options = {}) const;

  struct Impl;
  explicit GlomSamModel(std::unique_ptr<Impl> impl);
  ~GlomSamModel();
  GlomSamModel(const GlomSamModel&) = delete;
  GlomSamModel& operator=(const GlomSamModel&) = delete;

 private:
  std::unique_ptr<Impl> impl_;
  // Typed access to the torch module for the trainer, tests and benchmarks:
  // src/models/glomsam/internal.h (not part of the public API).
  friend struct ModelAccess;
};

}  // namespace nephroseg::glomsam
