// nephroseg/checkpoint/pth.h: reads and writes PyTorch zip-format checkpoints
// (`torch.save` since PyTorch 1.6) without Python.
//
// The reader interprets only the pickle opcodes and globals that state dicts need
// (OrderedDict, dict, list, tuple, str, int, float, bool, None, tensors rebuilt by
// torch._utils._rebuild_tensor_v2 / _rebuild_parameter over Float/Half/BFloat16/
// Double/Long/Int/Short/Char/Byte/Bool storages). Any other global or opcode is
// refused with an error naming it: nothing is ever executed. Storages saved on
// cuda:N are loaded to the CPU. Views that share a storage keep sharing it.
//
// Hostile input. A checkpoint is untrusted data (a .pth downloaded from the web is a
// pickle program). Besides the allow-list, the reader bounds what a file can make it
// do, by construction, and refuses anything beyond with one `error:` line:
//  - the zip layer: only stored (uncompressed) entries are read, as torch.save writes
//    them, so a record's size is at most the file's size; a storage's byte size
//    (numel x element size, overflow-checked) is checked against its record's size
//    before the record is read; each tensor view (sizes, strides, offset; every
//    product and sum overflow-checked) must lie inside its storage and hold at most
//    as many elements;
//  - the pickle VM (data.pkl of N bytes): the memo is a map grown by the PUTs executed
//    (not by the largest index named); at most kPickleRefsPerByte * N +
//    kPickleRefsBase references stored in containers; nesting at most kMaxPickleDepth;
//    a container that is already stored in another object cannot be modified, which
//    rejects every reference cycle (a list that contains itself); text-format numbers
//    must be numbers;
//  - the conversion to Value: an object referenced many times is copied each time
//    (Value is a plain value type; tensors share their storage), at most
//    kPickleValuesPerByte * N + kPickleValuesBase Values and
//    kPickleValueBytesPerByte * N + kPickleValueBytesBase string bytes in all.
// Together: a checkpoint of F bytes whose data.pkl has N bytes makes the reader
// allocate at most about F + 600 * N + 16 MiB (the stored tensors themselves plus
// the VM's objects; measured in tests/checkpoint/test_hostile.cpp). A 1 KB hostile
// checkpoint is refused in milliseconds and a few MiB.
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

/// Limits of the pickle reader (see the file comment). N is the size of the pickle.
constexpr int kMaxPickleDepth = 200;           // nesting of lists/tuples/dicts
constexpr size_t kMaxTensorRank = 64;          // dimensions of one tensor view
constexpr uint64_t kPickleRefsPerByte = 4;     // references stored in containers
constexpr uint64_t kPickleRefsBase = 4096;
constexpr uint64_t kPickleValuesPerByte = 2;   // Values produced by the conversion
constexpr uint64_t kPickleValuesBase = 65536;
constexpr uint64_t kPickleValueBytesPerByte = 2;  // string bytes copied by the conversion
constexpr uint64_t kPickleValueBytesBase = uint64_t(1) << 20;

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

/// The same for a checkpoint held in memory (the bytes of a .pth file): the zip
/// layer reads from `data` (size bytes, not copied; must outlive the call) and
/// `what` names the input in errors (e.g. "checkpoint 'x.pth'"). The fuzz targets'
/// entry point; same limits and errors as load_pickle_file.
Value load_pickle_memory(const void* data, size_t size, const std::string& what);

/// Runs only the pickle VM over the bytes of a data.pkl record (no zip layer).
/// Storages named by the pickle are looked up in `records` (storage key, i.e. the
/// record name without "data/", -> its bytes) and copied. Same limits and errors.
Value unpickle_memory(const void* data, size_t size,
                      const std::map<std::string, std::string>& records,
                      const std::string& what);

/// Only the zip layer's first step, from bytes: our central-directory index (end
/// records, zip64, every entry stored and inside the file, the archive folder, the
/// version record), as load_pickle_memory runs it before LibTorch's zip reader.
/// Returns the records of the archive folder ("data.pkl", "data/0", ...) and their
/// sizes. The zip fuzz target's entry point; throws nephroseg::Error naming `what`.
std::map<std::string, uint64_t> read_zip_records_memory(const void* data, size_t size,
                                                        const std::string& what);

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
