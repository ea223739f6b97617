// DINOv2 feed-forward network of the S/B/L models: fc1 -> exact GELU -> fc2.
// Ref: dinov2/layers/mlp.py::Mlp
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include "core/linear.h"

namespace nephroseg::dinov2 {

struct MlpOptions {
  int64_t in_features = 768;
  int64_t hidden_features = 3072;
  int64_t out_features = 768;
  bool bias = true;
};

/// Parameters: fc1.weight [hidden, in] (+bias), fc2.weight [out, hidden] (+bias).
class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(const MlpOptions& options);

  /// x: [B, N, in] -> [B, N, out].
  at::Tensor forward(const at::Tensor& x);

 private:
  nephroseg::Linear fc1_{nullptr};
  nephroseg::Linear fc2_{nullptr};
};
TORCH_MODULE(Mlp);

}  // namespace nephroseg::dinov2
