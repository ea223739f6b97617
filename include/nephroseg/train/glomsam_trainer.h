// nephroseg/train/glomsam_trainer.h: training GlomSAM (and its UNet rough-mask
// generator) from image/mask folders. Spec: specs/glomsam.md §8.
//
// Recipe (defaults = the reference): AdamW lr 1e-4, wd 0.01, batch 2, constant lr,
// loss BCE + Dice + Boundary DoU, ViT frozen (gradients still flow through it to the
// prompt generator), UNet frozen, boxes from the GT with seeded jitter 0..20 px
// (or from the rough mask in auto mode). Each epoch: validation (per-image Dice, IoU,
// recall, pixel accuracy), CSV log, curve PNG, `last.pth` written atomically
// ({"model", "optimizer", "epoch", ...}, PyTorch zip format, official key names),
// `best.pth` when validation Dice improves, early stopping after `patience` epochs
// without improvement. resume = true continues from out_dir/last.pth exactly.
// Deterministic on CPU for a given seed and thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "nephroseg/glomsam/glomsam.h"
#include "nephroseg/train/distributed.h"
#include "nephroseg/train/losses.h"
#include "nephroseg/train/metrics.h"

namespace nephroseg::train {

struct GlomSamTrainOptions {
  std::string images_dir, masks_dir;
  std::string val_images_dir, val_masks_dir;  // optional; else split
  std::string split = "8:1:1";
  uint64_t seed = 2023;
  std::string out_dir;
  glomsam::GlomSamConfig config = glomsam::GlomSamConfig::official();
  std::string sam_checkpoint, resnet_checkpoint, unet_checkpoint;  // optional initial weights
  std::string init_checkpoint;  // optional full GlomSAM checkpoint to start from
  int64_t epochs = 200;
  int64_t batch_size = 2;
  double lr = 1e-4;
  double weight_decay = 0.01;
  int64_t patch_size = 0;  // 0 = img_size (see PatchOptions)
  int64_t stride = 0;
  int64_t box_jitter = 20;
  bool auto_box = false;
  bool freeze_unet = true;  // false mimics the released script (UNet trained too)
  /// Also train the ViT (patch_embed, pos_embed, blocks, neck). The reference keeps it
  /// frozen because it starts from MedSAM; a model trained from random initialisation
  /// (no --sam) learns much faster with it trainable (see docs/glomsam.md).
  bool train_vit = false;
  /// "constant" (the reference) or "cosine": lr * (1 + cos(pi * (epoch - 1) / epochs)) / 2
  /// per epoch (a function of the epoch only, so --resume stays exact).
  std::string lr_schedule = "constant";
  GlomSamLossOptions loss;
  int64_t patience = 20;    // early stopping; 0 = off
  bool resume = false;
  int64_t max_batches_per_epoch = 0;  // 0 = all (tests)
  /// BatchNorm layers (the ResNet branch) normalise with their running statistics and
  /// leave them unchanged (their affine weights still train): no batch statistics in
  /// the forward pass, so a run no longer depends on how a batch is split over ranks.
  bool freeze_batchnorm = false;
  /// Data-parallel training (docs/glomsam.md, "Data-parallel training"): every rank
  /// runs this function with the same options; a step's global batch of
  /// batch_size x world_size images is cut into per-rank parts of batch_size, the
  /// gradients are summed so that the step equals one process with the global batch,
  /// and only rank 0 validates, logs and writes files.
  DistributedOptions distributed;
  /// Called after each epoch (progress display, rank 0 only); may be empty.
  std::function<void(const struct EpochRecord&)> on_epoch;
};

struct EpochRecord {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_bce = 0, train_dice = 0, train_bdou = 0;
  double val_loss = 0;
  SegmentationMetrics val;  // per-image mean
  double seconds = 0;
  double images_per_second = 0;
  bool best = false;
};

struct TrainSummary {
  std::vector<EpochRecord> history;
  int64_t best_epoch = 0;
  double best_val_dice = -1;
  bool early_stopped = false;
  std::string best_checkpoint, last_checkpoint;
  SegmentationMetrics test;  // best model on the test split (num_batches 0 if none)
  /// Data-parallel runs: this process's rank and the world size. On ranks other than 0
  /// the history holds the (global) training losses only, no validation values.
  int64_t rank = 0, world_size = 1;
  int64_t steps = 0;                // optimiser steps taken by this call
  double train_seconds = 0;         // time in training steps (no validation), this call
  double collective_seconds = 0;    // of which in all-reduce / broadcast / barrier
};

/// Trains GlomSAM; throws nephroseg::Error on bad data before any training step.
TrainSummary train_glomsam(const GlomSamTrainOptions& options);

/// Options of the UNet rough-mask generator training (spec §9 #5).
struct UNetTrainOptions {
  std::string images_dir, masks_dir, val_images_dir, val_masks_dir;
  std::string split = "8:1:1";
  uint64_t seed = 2023;
  std::string out_dir;
  std::vector<int64_t> features{64, 128, 256, 512};
  int64_t input_size = 512;
  int64_t epochs = 100;
  int64_t batch_size = 4;
  double lr = 1e-4;
  int64_t patience = 20;
  int64_t max_batches_per_epoch = 0;
  /// Data-parallel training, as for GlomSAM (BatchNorm: per-rank batch statistics,
  /// running statistics averaged over ranks after every step).
  DistributedOptions distributed;
  std::function<void(const EpochRecord&)> on_epoch;
};
/// Trains the UNet with BCE + Dice and Adam; writes {"state_dict": ...} files
/// (the official RoughMaskGenerator layout) as best.pth / last.pth.
TrainSummary train_unet(const UNetTrainOptions& options);

/// Reads back a training checkpoint written by train_glomsam (for tests and tools):
/// the epoch stored and the model state dict.
int64_t checkpoint_epoch(const std::string& path);

}  // namespace nephroseg::train
