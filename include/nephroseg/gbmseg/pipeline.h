// nephroseg/gbmseg/pipeline.h: the GBMSeg one-shot pipeline (spec §1): a reference image
// with its GBM mask, then any number of target images -> point prompts -> masks.
//
//   using namespace nephroseg::gbmseg;
//   GbmSegPipeline pipe(make_feature_extractor(dino_spec), make_point_segmenter(sam_spec),
//                       PromptOptions::authors_code());
//   pipe.set_reference(reference_rgb, reference_mask);   // reference features: once
//   pipe.add_reference(second_rgb, second_mask);         // optional: few-shot pooling
//   for (const cv::Mat& target : targets) {
//     SegmentResult r = pipe.segment(target);            // one feature pass + one SAM call
//     write(r.mask);                                     // original size, 0/255
//     // r.prompts: every prompt stage; r.points/labels: what the segmenter got
//   }
//
// Per target (spec §1-§10):
//   1. resize the target to S x S (Pillow's default bicubic, like the authors' main.py);
//   2. patch features of the target (ONE pass; the reference's were computed by
//      set_reference(): the authors run the model on [reference, target] twice);
//   3. prompts: feature matching against the reference patch sets + APE (prompts.h);
//   4. the segmenter on the S x S image with final_pos (label 1) then final_neg (label 0);
//   5. optional largest-contour post-processing (authors' max_contour, off by default);
//   6. the S x S mask is resized back to the target's original size (MaskResize).
// The reference image and mask are resized to S x S the same way (the mask keeps its raw
// values and channels: bicubic ringing matters for the "all non-zero" patch rule, §2/§4).
//
// Few-shot references (an extension; the authors' code loops over references but keeps
// only the last result): add_reference() pools k references. Their features are stacked
// into one [k*G*G, D] matrix (reference r's patch i is row r*G*G + i) and their fg / bg
// patch sets are united with the same offsets, so forward matching runs from every
// reference patch and backward matching looks for a target patch's nearest patch among
// all k references; everything downstream is unchanged. With one reference this is
// exactly the one-shot pipeline (the parity tests run through it).
//
// Thread-safety: set_reference() must not run concurrently with anything else;
// segment() is const and may run concurrently if the backends allow it (the model
// backends of model_backends.h do).
#pragma once

#include <ATen/core/Tensor.h>
#include <opencv2/core/mat.hpp>

#include <memory>
#include <string>
#include <vector>

#include "nephroseg/gbmseg/backends.h"
#include "nephroseg/gbmseg/prompts.h"

namespace nephroseg::gbmseg {

/// How the S x S mask is brought back to the target's original size.
enum class MaskResize {
  /// Nearest neighbour with pixel-centre sampling (OpenCV INTER_NEAREST_EXACT, like
  /// Pillow's NEAREST): output pixel (x, y) takes the S x S pixel containing the point
  /// ((x + 0.5) * S / W, (y + 0.5) * S / H). The default.
  kNearest,
  /// Bilinear (OpenCV INTER_LINEAR, pixel centres aligned) of the 0/255 mask, then
  /// >= 128 -> 255: smoother edges when upscaling.
  kBilinearThreshold,
};

struct PipelineOptions {
  MaskResize mask_resize = MaskResize::kNearest;
  /// false: SegmentResult::mask stays at S x S (the authors' output; spec §14 #10).
  bool resize_to_original = true;
  /// The authors' optional max_contour step (keep_largest_contour), off in main.py.
  bool largest_contour = false;
};

/// Wall-clock seconds of one segment() call, by stage.
struct SegmentTimings {
  double resize = 0.0;    ///< target -> S x S
  double features = 0.0;  ///< target patch features
  double prompts = 0.0;   ///< matching + APE
  double segment = 0.0;   ///< segmenter (SAM: encoder + decoder)
  double postprocess = 0.0;  ///< largest contour + resize back
  double total = 0.0;
};

struct SegmentResult {
  cv::Mat image_working;  ///< CV_8UC3 RGB, S x S: the resized target the models saw
  cv::Mat mask_working;   ///< CV_8UC1 {0, 255}, S x S: the segmenter's mask (+ contour step)
  cv::Mat mask;           ///< CV_8UC1 {0, 255}: original size (or S x S, see options)
  int original_width = 0, original_height = 0;
  PromptResult prompts;           ///< every stage of the prompt generation
  std::vector<cv::Point2f> points;  ///< what the segmenter got, in S x S pixels
  std::vector<int> labels;          ///< 1 = positive, 0 = negative, same length
  SegmentTimings timings;
};

class GbmSegPipeline {
 public:
  /// Both backends are required. options.size must be a positive multiple of the
  /// extractor's patch size and options.patch_size must equal it.
  GbmSegPipeline(std::shared_ptr<PatchFeatureExtractor> features,
                 std::shared_ptr<PointPromptSegmenter> segmenter, PromptOptions options,
                 PipelineOptions pipeline_options = {});

  /// Sets the one-shot reference: image (CV_8UC3 RGB, any size) and its mask (CV_8U, 1-4
  /// channels, any values; every channel is tested by the patch rule). Both are resized
  /// to S x S (PIL bicubic); the reference features and fg/bg patch sets are computed
  /// here, once. Throws nephroseg::Error on bad inputs.
  void set_reference(const cv::Mat& image_rgb, const cv::Mat& mask);
  /// Same with already computed inputs: image and mask at S x S exactly as the models
  /// see them, plus the reference features [G*G, D] (e.g. cached from an earlier run).
  void set_reference_working(const cv::Mat& image_working, const cv::Mat& mask_working,
                             const at::Tensor& features);
  /// Adds one more reference to the pool (few-shot; see the header comment); same
  /// arguments and checks as set_reference / set_reference_working. Requires a reference.
  void add_reference(const cv::Mat& image_rgb, const cv::Mat& mask);
  void add_reference_working(const cv::Mat& image_working, const cv::Mat& mask_working,
                             const at::Tensor& features);
  bool has_reference() const { return ref_features_.defined(); }
  /// Number of pooled references (0 before set_reference).
  int reference_count() const { return static_cast<int>(ref_images_.size()); }

  /// Segments one target (CV_8UC3 RGB, any size). Requires set_reference().
  /// Never throws for the authors' crash cases (see SegmentResult::prompts.warnings);
  /// throws nephroseg::Error on bad inputs or backend failures.
  SegmentResult segment(const cv::Mat& target_rgb) const;

  const PromptOptions& options() const { return options_; }
  const PipelineOptions& pipeline_options() const { return pipeline_options_; }
  const PatchFeatureExtractor& feature_extractor() const { return *features_; }
  const PointPromptSegmenter& segmenter() const { return *segmenter_; }
  /// Reference state (valid after set_reference). With k pooled references the
  /// features are [k*G*G, D] and the patch sets index them (offset r*G*G).
  const at::Tensor& reference_features() const { return ref_features_; }  ///< [k*G*G, D]
  const PatchSets& reference_patch_sets() const { return ref_sets_; }
  /// The first reference, S x S (RGB / raw mask); `index` picks another one.
  const cv::Mat& reference_image_working(int index = 0) const { return ref_images_.at(index); }
  const cv::Mat& reference_mask_working(int index = 0) const { return ref_masks_.at(index); }
  /// Seconds spent in set_reference + add_reference (feature passes included).
  double reference_seconds() const { return ref_seconds_; }

 private:
  std::shared_ptr<PatchFeatureExtractor> features_;
  std::shared_ptr<PointPromptSegmenter> segmenter_;
  PromptOptions options_;
  PipelineOptions pipeline_options_;
  void append_reference(const cv::Mat& image_working, const cv::Mat& mask_working, const at::Tensor& features);

  std::vector<cv::Mat> ref_images_, ref_masks_;  // one per pooled reference
  at::Tensor ref_features_;
  PatchSets ref_sets_;
  double ref_seconds_ = 0.0;
};

/// Pillow `Image.resize((size, size))` with its default filter (bicubic) of an 8-bit
/// image with 1-4 channels (as the authors' main.py does for images and masks).
cv::Mat resize_to_working(const cv::Mat& image, int size);

/// Brings an S x S 0/255 mask to width x height by `mode` (see MaskResize).
cv::Mat resize_mask(const cv::Mat& mask, int width, int height, MaskResize mode);

}  // namespace nephroseg::gbmseg
