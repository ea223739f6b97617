// nephroseg/checkpoint/state_dict.h: ordered name -> tensor maps, and strict binding
// of such a map to a LibTorch module.
//
// Modules register their children and parameters under the reference (Python)
// attribute names, so `module.named_parameters()` keys equal checkpoint keys by
// construction; binding is then a strict 1:1 match.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <unordered_map>
#include <vector>

#include "nephroseg/core/error.h"

namespace torch {
namespace nn {
class Module;
}
}  // namespace torch

namespace nephroseg::checkpoint {

/// An insertion-ordered map from state-dict key to tensor (like Python's OrderedDict).
class StateDict {
 public:
  /// Adds a key; throws nephroseg::Error if the key is already present.
  void insert(const std::string& key, at::Tensor tensor);
  /// Adds or replaces a key (replacing keeps the original position).
  void set(const std::string& key, at::Tensor tensor);
  bool contains(const std::string& key) const;
  /// The tensor under key; throws nephroseg::Error naming the key if absent.
  const at::Tensor& at(const std::string& key) const;
  const std::vector<std::string>& keys() const { return keys_; }
  size_t size() const { return keys_.size(); }
  bool empty() const { return keys_.empty(); }
  void erase(const std::string& key);

  /// Entries whose key starts with `prefix`, with the prefix removed.
  StateDict sub(const std::string& prefix) const;
  /// All entries with `prefix` prepended to their keys.
  StateDict prefixed(const std::string& prefix) const;
  /// Total bytes of tensor data (element size x numel, views counted in full).
  int64_t nbytes() const;

 private:
  std::vector<std::string> keys_;
  std::unordered_map<std::string, at::Tensor> map_;
};

/// The named parameters and buffers of a module in Python's state_dict() order (a
/// module's own parameters, then its own buffers, then its children recursively),
/// so a faithful port yields the reference keys in the reference order. The tensors
/// alias the module's storage.
StateDict state_dict_of(const torch::nn::Module& module);

struct BindOptions {
  /// Keys the checkpoint may lack (the module keeps its initial values).
  std::vector<std::string> allow_missing;
  /// Keys the checkpoint may carry that the module does not have (ignored).
  std::vector<std::string> allow_unexpected;
  /// When true, a float32 tensor of the right shape is adopted without a copy (the
  /// module's parameter then shares the checkpoint's storage). This keeps loading
  /// at about 1x the file size in memory.
  bool share_storage = true;
};

/// What bind_state_dict throws when a state dict does not fit a module. what() is
/// the user-facing message (every key listed); the lists are for callers that want
/// to summarise or test them without parsing that text.
class BindError : public Error {
 public:
  struct Mismatch {
    std::string key;
    std::vector<int64_t> expected_shape, found_shape;
    std::string expected_dtype, found_dtype;  // set when the dtype kind differs
  };

  BindError(const std::string& message, std::string checkpoint, std::vector<std::string> missing,
            std::vector<std::string> unexpected, std::vector<Mismatch> mismatched,
            size_t expected_count, size_t found_count);

  /// The `what` given to bind_state_dict (the checkpoint's name).
  const std::string& checkpoint() const { return checkpoint_; }
  /// Module keys the state dict lacks, in module order.
  const std::vector<std::string>& missing() const { return missing_; }
  /// State-dict keys the module does not have, in file order.
  const std::vector<std::string>& unexpected() const { return unexpected_; }
  /// Keys present in both with a different shape or dtype kind, in module order.
  const std::vector<Mismatch>& mismatched() const { return mismatched_; }
  size_t expected_count() const { return expected_count_; }
  size_t found_count() const { return found_count_; }

 private:
  std::string checkpoint_;
  std::vector<std::string> missing_, unexpected_;
  std::vector<Mismatch> mismatched_;
  size_t expected_count_ = 0, found_count_ = 0;
};

/// Binds `sd` to `module` strictly: throws BindError (a nephroseg::Error) listing
/// every missing key, every unexpected key and every shape mismatch (key, expected
/// shape, found shape) at once. `what` names the checkpoint (file name) in the
/// message. Half and bfloat16 tensors are cast to the parameter's dtype.
void bind_state_dict(torch::nn::Module& module, const StateDict& sd,
                     const std::string& what, const BindOptions& options = {});

}  // namespace nephroseg::checkpoint
