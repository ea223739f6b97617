// Reading PyTorch zip checkpoints. Ref: torch/serialization.py::_load (records
// <archive>/data.pkl and <archive>/data/<key>), caffe2/serialize/inline_container.h.
#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <c10/util/Exception.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "nephroseg/checkpoint/pth.h"
#include "nephroseg/core/error.h"
#include "unpickler.h"

namespace fs = std::filesystem;

namespace nephroseg::checkpoint {

const Value* Value::find(const std::string& key) const {
  if (kind != Kind::kDict) return nullptr;
  for (const auto& [k, v] : entries) {
    if (k.kind == Kind::kString && k.s == key) return &v;
  }
  return nullptr;
}

namespace {

std::string first_line(const std::string& s) {
  const auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

// Checks the file exists and is a zip archive; gives a precise error otherwise.
void check_container(const std::string& path) {
  std::error_code ec;
  NEPHRO_CHECK(fs::exists(path, ec), "checkpoint '", path, "' does not exist");
  NEPHRO_CHECK(fs::is_regular_file(path, ec), "checkpoint '", path, "' is not a file");
  std::ifstream in(path, std::ios::binary);
  NEPHRO_CHECK(in.good(), "cannot open checkpoint '", path, "'");
  unsigned char magic[4] = {};
  in.read(reinterpret_cast<char*>(magic), 4);
  NEPHRO_CHECK(in.gcount() == 4, "checkpoint '", path, "' is empty or truncated (",
               in.gcount(), " bytes)");
  if (magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4) return;
  if (magic[0] == 0x80 && magic[1] >= 2 && magic[1] <= 5) {
    NEPHRO_FAIL("checkpoint '", path,
                "' uses the legacy (pre-1.6, non-zip) torch.save format, which nephroseg does "
                "not read; re-save it with Python: torch.save(torch.load(f), f_new)");
  }
  NEPHRO_FAIL("'", path, "' is not a PyTorch checkpoint (expected a zip archive written by "
              "torch.save)");
}

}  // namespace

Value load_pickle_file(const std::string& path) {
  check_container(path);
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const c10::Error& e) {
    NEPHRO_FAIL("checkpoint '", path, "' is a corrupt or truncated archive: ",
                first_line(e.what_without_backtrace()));
  }
  try {
    NEPHRO_CHECK(reader->hasRecord("data.pkl"), "'", path,
                 "' is a zip file but not a torch.save checkpoint (no data.pkl record; a "
                 "TorchScript archive or another format?)");
    auto [pickle_data, pickle_size] = reader->getRecord("data.pkl");
    auto loader = [&](const std::string& key, at::ScalarType dtype, int64_t numel) {
      const std::string record = "data/" + key;
      NEPHRO_CHECK(reader->hasRecord(record), "checkpoint '", path, "' lacks storage record '",
                   record, "' (truncated or corrupt)");
      auto [data, size] = reader->getRecord(record);
      const size_t need = static_cast<size_t>(numel) * c10::elementSize(dtype);
      NEPHRO_CHECK(numel >= 0 && size >= need, "checkpoint '", path, "': storage '", key,
                   "' holds ", size, " bytes, expected ", need, " (truncated or corrupt)");
      // Adopt the record's buffer without copying: the tensor owns the DataPtr.
      c10::Storage storage(c10::Storage::use_byte_size_t(), need, std::move(data),
                           /*allocator=*/nullptr, /*resizable=*/false);
      return at::empty({0}, at::TensorOptions().dtype(dtype)).set_(storage, 0, {numel}, {1});
    };
    return detail::unpickle(static_cast<const char*>(pickle_data.get()), pickle_size, loader,
                            "checkpoint '" + path + "'");
  } catch (const c10::Error& e) {
    NEPHRO_FAIL("checkpoint '", path, "' is corrupt: ", first_line(e.what_without_backtrace()));
  }
}

namespace {

bool is_tensor_dict(const Value& v) {
  if (!v.is_dict() || v.entries.empty()) return false;
  for (const auto& [k, val] : v.entries) {
    if (k.kind != Value::Kind::kString || val.kind != Value::Kind::kTensor) return false;
  }
  return true;
}

}  // namespace

StateDict state_dict_from_value(const Value& root, const std::string& what,
                                const LoadOptions& options) {
  const Value* sd = nullptr;
  if (!options.entry.empty()) {
    sd = root.find(options.entry);
    NEPHRO_CHECK(sd != nullptr, what, ": has no top-level entry '", options.entry, "'");
    NEPHRO_CHECK(is_tensor_dict(*sd), what, ": entry '", options.entry,
                 "' is not a dict of tensors");
  } else if (is_tensor_dict(root)) {
    sd = &root;
  } else {
    for (const char* name : {"model", "state_dict", "model_state_dict", "module"}) {
      const Value* v = root.find(name);
      if (v && is_tensor_dict(*v)) {
        sd = v;
        break;
      }
    }
    if (sd == nullptr) {
      std::string keys;
      if (root.is_dict()) {
        for (size_t k = 0; k < root.entries.size() && k < 10; ++k) {
          keys += (k ? ", " : "") + root.entries[k].first.s;
        }
      }
      NEPHRO_FAIL(what, ": no state dict found (neither a dict of tensors nor a dict with a "
                        "'model'/'state_dict' entry",
                  keys.empty() ? "" : "; top-level keys: " + keys, ")");
    }
  }
  StateDict out;
  for (const auto& [k, v] : sd->entries) out.insert(k.s, v.tensor);
  return out;
}

StateDict load_state_dict(const std::string& path, const LoadOptions& options) {
  Value root = load_pickle_file(path);
  return state_dict_from_value(root, "checkpoint '" + path + "'", options);
}

}  // namespace nephroseg::checkpoint
