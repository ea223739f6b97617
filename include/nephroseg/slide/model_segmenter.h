// nephroseg/slide/model_segmenter.h: the model segmenters of `nephroseg slide`.
//
//   glomsam  GlomSAM on each tile (core + halo) as `glomsam predict --auto` does it:
//            the rough-mask generator gives the box prompt, the model the mask
//            (logits > the config's threshold); score = sigmoid(logits). A tile larger
//            than the model input is tiled inside the model (GlomSamModel::predict),
//            so the best tile side is img_size - 2 x halo (the CLI's default; see
//            TileSegmenter::input_side()).
//   sam      SAM with box prompts from the classical detector (detector.h): every
//   medsam   connected component of the detector's tile mask (at least min_box_px
//            wide and high) becomes a box; the tile is encoded once and all boxes
//            decoded in one pass; the object mask is the union of the box masks;
//            score = the predicted IoU of the mask covering the pixel. MedSAM takes the
//            same boxes with its own preprocessing (SamConfig "medsam").
// Each records its model, config and checkpoint fingerprint in config_json(), so a
// resumed run with another checkpoint does not reuse the tiles of the first.
//
// Thread-safety: prepare() once, then segment() is const (one tile at a time: the
// models run with the process's intra-op threads).
#pragma once

#include <memory>
#include <string>

#include "nephroseg/core/precision.h"
#include "nephroseg/slide/detector.h"

namespace nephroseg::slide {

struct SegmenterSpec {
  std::string name = "classical";  ///< classical | glomsam | sam | medsam
  std::string checkpoint;          ///< model segmenters: the .pth file
  /// glomsam: auto (stored by `glomsam train`, else official) | official | tiny | JSON;
  /// sam: a preset (vit_b, vit_l, vit_h, medsam) or a JSON config file; "" = vit_b
  /// (sam) or medsam (medsam).
  std::string config;
  int min_box_px = 8;              ///< sam/medsam: smaller detector components give no box
  /// Model segmenters: inference precision (core/precision.h); recorded in
  /// config_json() when not fp32, so tiles of another precision are not reused.
  Precision precision = Precision::kFp32;
};

/// The segmenter `spec` names; loads the model (clear errors for a missing checkpoint
/// or one that does not fit the config).
std::unique_ptr<TileSegmenter> make_segmenter(const SegmenterSpec& spec);

}  // namespace nephroseg::slide
