#include "core/module_init.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include <mutex>

namespace nephroseg {
namespace {
thread_local bool g_skip_init = false;
}

SkipInitGuard::SkipInitGuard() : previous_(g_skip_init) { g_skip_init = true; }
SkipInitGuard::~SkipInitGuard() { g_skip_init = previous_; }
bool SkipInitGuard::active() { return g_skip_init; }

Linear make_linear(int64_t in_features, int64_t out_features, bool bias) {
  if (!g_skip_init) {
    return Linear(torch::nn::LinearOptions(in_features, out_features).bias(bias));
  }
  // Build an empty layer (nothing to initialise), then give its parameters their real
  // shapes without writing them. set_data keeps the parameter objects (and the
  // module's weight/bias members) and only swaps their storage.
  Linear linear(torch::nn::LinearOptions(in_features, 0).bias(bias));
  linear->options.out_features(out_features);
  at::NoGradGuard no_grad;
  linear->weight.set_data(at::empty({out_features, in_features}));
  if (bias) linear->bias.set_data(at::empty({out_features}));
  return linear;
}

torch::nn::Conv2d make_conv2d(const torch::nn::Conv2dOptions& options) {
  if (!g_skip_init || options.groups() != 1) return torch::nn::Conv2d(options);
  // One output channel (LibTorch's init cannot take an empty conv weight): a few
  // in x k x k values are initialised, then the real shape replaces them unwritten.
  torch::nn::Conv2dOptions small = options;
  small.out_channels(1);
  torch::nn::Conv2d conv(small);
  conv->options.out_channels(options.out_channels());
  std::vector<int64_t> shape{options.out_channels(), options.in_channels()};
  for (int64_t k : *options.kernel_size()) shape.push_back(k);
  at::NoGradGuard no_grad;
  conv->weight.set_data(at::empty(shape));
  if (options.bias()) conv->bias.set_data(at::empty({options.out_channels()}));
  return conv;
}

GlobalRngGuard::GlobalRngGuard() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  state_ = gen.get_state();
}

GlobalRngGuard::~GlobalRngGuard() {
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state_);
}

}  // namespace nephroseg
