// nephroseg/checkpoint/pth.h: reads and writes PyTorch zip-format checkpoints
// (`torch.save` since PyTorch 1.6) without Python.
//
// The reader interprets only the pickle opcodes and globals that state dicts need
// (OrderedDict, dict, list, tuple, str, int, float, bool, None, tensors rebuilt by
// torch._utils._rebuild_tensor_v2 / _rebuild_parameter over Float/Half/BFloat16/
// Double/Long/Int/Short/Char/Byte/Bool storages). Any other global or opcode is
// refused with an error naming it: nothing is ever executed. Storages saved on
// cuda:N are loaded to the CPU. Views that share a storage keep sharing it.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "nephroseg/checkpoint/state_dict.h"

namespace nephroseg::checkpoint {

/// A value of the pickled object tree: the subset a checkpoint holds.
struct Value {
  enum class Kind { kNone, kBool, kInt, kFloat, kString, kTensor, kList, kTuple, kDict, kOpaque };
  Kind kind = Kind::kNone;
  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  std::string s;                      // kString; kOpaque: the global's name
  at::Tensor tensor;                  // kTensor
  std::vector<Value> items;           // kList, kTuple
  std::vector<std::pair<Value, Value>> entries;  // kDict (insertion order)

  bool is_dict() const { return kind == Kind::kDict; }
  /// Dict lookup by string key; nullptr when absent (or not a dict).
  const Value* find(const std::string& key) const;
};

/// Parses a whole checkpoint file into a Value tree. Throws nephroseg::Error naming
/// the file and the problem for legacy (non-zip) files, truncated or corrupt
/// archives, non-PyTorch files and unsupported pickle content.
Value load_pickle_file(const std::string& path);

struct LoadOptions {
  /// Name of the top-level entry holding the state dict (e.g. "model"). Empty means
  /// automatic: the top-level dict itself if all its values are tensors, else the
  /// first of "model", "state_dict", "module" that is a dict of tensors.
  std::string entry;
};

/// Loads a state dict (OrderedDict or dict of tensors, possibly wrapped). Keys keep
/// the file's order; tensors keep their stored dtype.
StateDict load_state_dict(const std::string& path, const LoadOptions& options = {});

/// Extracts a state dict from an already parsed tree (same rules as above).
StateDict state_dict_from_value(const Value& root, const std::string& what,
                                const LoadOptions& options = {});

/// Writes `root` as a PyTorch zip checkpoint that Python's torch.load reads
/// (dicts are written as plain dicts, except that a Value produced by
/// make_state_dict_value() is written as a collections.OrderedDict). Writes to a
/// temporary file in the same folder and renames it into place.
void save_pickle_file(const std::string& path, const Value& root);

/// Writes a state dict as an OrderedDict, like torch.save(module.state_dict()).
void save_state_dict(const std::string& path, const StateDict& sd);

/// Value helpers for building training checkpoints ({"model": ..., "epoch": ...}).
Value make_state_dict_value(const StateDict& sd);
Value make_int(int64_t v);
Value make_float(double v);
Value make_string(const std::string& v);
Value make_dict(std::vector<std::pair<std::string, Value>> entries);

}  // namespace nephroseg::checkpoint
