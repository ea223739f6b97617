#include "models/dinov2/module_init.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

namespace nephroseg::dinov2 {
namespace {
thread_local bool g_skip_init = false;
}

SkipInitGuard::SkipInitGuard() : previous_(g_skip_init) { g_skip_init = true; }
SkipInitGuard::~SkipInitGuard() { g_skip_init = previous_; }
bool SkipInitGuard::active() { return g_skip_init; }

torch::nn::Linear make_linear(int64_t in_features, int64_t out_features, bool bias) {
  if (!g_skip_init) {
    return torch::nn::Linear(torch::nn::LinearOptions(in_features, out_features).bias(bias));
  }
  // Build an empty layer (nothing to initialise), then give its parameters their real
  // shapes without writing them. set_data keeps the parameter objects (and the
  // module's weight/bias members) and only swaps their storage.
  torch::nn::Linear linear(torch::nn::LinearOptions(in_features, 0).bias(bias));
  linear->options.out_features(out_features);
  at::NoGradGuard no_grad;
  linear->weight.set_data(at::empty({out_features, in_features}));
  if (bias) linear->bias.set_data(at::empty({out_features}));
  return linear;
}

}  // namespace nephroseg::dinov2
