// src/core/module_init.h (internal): building modules whose weights a checkpoint
// will overwrite, without paying for (or drawing random numbers for) their
// initialisation.
//
// torch::nn::Linear and Conv2d initialise their weights in their constructors; for a
// ViT-H SAM that is 630 M random draws and 2.5 GB touched before the checkpoint
// replaces them. Inside a SkipInitGuard, make_linear / make_conv2d return layers
// whose parameters are allocated but never written (their pages stay untouched until
// the checkpoint is bound, which swaps the storage), and module-specific init code
// asks SkipInitGuard::active() before writing. Outside a guard both build exactly
// what the LibTorch constructors build (same values, same random draws).
//
// GlobalRngGuard restores LibTorch's default CPU generator when it goes out of scope,
// so model loading leaves the caller's random stream as it found it.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "core/linear.h"

namespace nephroseg {

/// While alive (on this thread), make_linear / make_conv2d skip initialisation.
class SkipInitGuard {
 public:
  SkipInitGuard();
  ~SkipInitGuard();
  SkipInitGuard(const SkipInitGuard&) = delete;
  SkipInitGuard& operator=(const SkipInitGuard&) = delete;

  static bool active();

 private:
  bool previous_;
};

/// nephroseg::Linear (core/linear.h) as torch::nn::Linear(in_features, out_features)
/// .bias(bias) builds it, initialised as LibTorch does unless a SkipInitGuard is active
/// (then the values are unspecified).
Linear make_linear(int64_t in_features, int64_t out_features, bool bias = true);

/// torch::nn::Conv2d(options), with the same rule (groups must be 1 when skipping).
torch::nn::Conv2d make_conv2d(const torch::nn::Conv2dOptions& options);

/// Saves the state of LibTorch's default CPU generator and restores it on
/// destruction. Not a lock: other threads drawing meanwhile see the saved stream.
class GlobalRngGuard {
 public:
  GlobalRngGuard();
  ~GlobalRngGuard();
  GlobalRngGuard(const GlobalRngGuard&) = delete;
  GlobalRngGuard& operator=(const GlobalRngGuard&) = delete;

 private:
  at::Tensor state_;
};

}  // namespace nephroseg
