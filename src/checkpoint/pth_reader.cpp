// Reading PyTorch zip checkpoints. Ref: torch/serialization.py::_load (records
// <archive>/data.pkl and <archive>/data/<key>), caffe2/serialize/inline_container.h.
// Every LibTorch (c10::Error) message from the zip layer becomes one line of ours.
#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/versions.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

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

namespace ser = caffe2::serialize;

// The reason in a c10::Error from the zip layer, without LibTorch's decoration
// ("[enforce fail at inline_container.cc:129] . PytorchStreamReader failed reading zip
// archive: failed finding central directory" -> "failed finding central directory").
std::string zip_reason(const c10::Error& e) {
  std::string s = e.what_without_backtrace();
  s = s.substr(0, s.find('\n'));
  if (s.rfind("[enforce fail at", 0) == 0) {
    const auto close = s.find("] ");
    s = close == std::string::npos ? std::string() : s.substr(close + 2);
    if (s.rfind(". ", 0) == 0) s = s.substr(2);
  }
  const std::string prefix = "PytorchStreamReader failed ";
  if (s.rfind(prefix, 0) == 0) s = s.substr(prefix.size());
  const std::string reading = "reading zip archive: ";
  if (s.rfind(reading, 0) == 0) s = s.substr(reading.size());
  if (s.size() > 120) s = s.substr(0, 120) + "...";
  return s.empty() ? "unreadable zip archive" : s;
}

// Gives a precise error unless the first bytes are a zip local header.
void check_magic(const unsigned char* magic, size_t n, const std::string& what) {
  NEPHRO_CHECK(n >= 4, what, " is empty or truncated (", n, " bytes)");
  if (magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4) return;
  if (magic[0] == 0x80 && magic[1] >= 2 && magic[1] <= 5) {
    NEPHRO_FAIL(what,
                " uses the legacy (pre-1.6, non-zip) torch.save format, which nephroseg does "
                "not read; re-save it with Python: torch.save(torch.load(f), f_new)");
  }
  NEPHRO_FAIL(what, " is not a PyTorch checkpoint (expected a zip archive written by "
              "torch.save)");
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
  check_magic(magic, static_cast<size_t>(in.gcount()), "checkpoint '" + path + "'");
}

// Bounds-checked reads from bytes in memory (LibTorch's MemoryReadAdapter is not).
class BytesAdapter final : public ser::ReadAdapterInterface {
 public:
  BytesAdapter(const void* data, size_t size)
      : data_(static_cast<const unsigned char*>(data)), size_(size) {}
  size_t size() const override { return size_; }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= size_) return 0;
    n = std::min<uint64_t>(n, size_ - pos);
    std::memcpy(buf, data_ + pos, n);
    return n;
  }

 private:
  const unsigned char* data_;
  size_t size_;
};

// Reads from a file; short reads past the end return fewer bytes.
class FileBytesAdapter final : public ser::ReadAdapterInterface {
 public:
  FileBytesAdapter(const std::string& path, size_t size) : in_(path, std::ios::binary), size_(size) {
    NEPHRO_CHECK(in_.good(), "cannot open checkpoint '", path, "'");
  }
  size_t size() const override { return size_; }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= size_) return 0;
    n = std::min<uint64_t>(n, size_ - pos);
    in_.clear();
    in_.seekg(static_cast<std::streamoff>(pos));
    in_.read(static_cast<char*>(buf), static_cast<std::streamsize>(n));
    return static_cast<size_t>(in_.gcount());
  }

 private:
  mutable std::ifstream in_;
  size_t size_;
};

uint64_t le(const unsigned char* p, int n) {
  uint64_t v = 0;
  for (int k = 0; k < n; ++k) v |= static_cast<uint64_t>(p[k]) << (8 * k);
  return v;
}

// One entry of the zip central directory, as far as the reader needs it.
struct ZipEntry {
  uint64_t size = 0;  // uncompressed == compressed: only stored entries are accepted
  uint64_t local_header = 0;
};

// Reads the zip central directory before LibTorch's reader allocates anything, so
// that every record's size is known (and at most the archive's size). Ref: PKWARE
// APPNOTE.TXT sections 4.3.12-4.3.16 (central directory, end records, zip64).
std::map<std::string, ZipEntry> read_zip_index(const ser::ReadAdapterInterface& in,
                                               const std::string& what) {
  const uint64_t size = in.size();
  auto bytes = [&](uint64_t pos, size_t n) {
    std::string b(n, '\0');
    NEPHRO_CHECK(pos <= size && n <= size - pos && in.read(pos, b.data(), n) == n, what,
                 " is a corrupt or truncated zip archive (a header lies past the end of the file)");
    return b;
  };
  auto u = [](const std::string& b, size_t at, int n) {
    return le(reinterpret_cast<const unsigned char*>(b.data()) + at, n);
  };
  constexpr uint64_t kEocd = 22;
  NEPHRO_CHECK(size >= kEocd, what, " is a corrupt or truncated zip archive (", size, " bytes)");
  const uint64_t tail_len = std::min<uint64_t>(size, kEocd + 65535);
  const std::string tail = bytes(size - tail_len, tail_len);
  size_t eocd = std::string::npos;
  for (size_t k = tail_len - kEocd + 1; k-- > 0;) {
    if (u(tail, k, 4) == 0x06054b50) {
      eocd = k;
      break;
    }
  }
  NEPHRO_CHECK(eocd != std::string::npos, what,
               " is a corrupt or truncated zip archive (no end-of-central-directory record)");
  uint64_t count = u(tail, eocd + 10, 2), cd_size = u(tail, eocd + 12, 4),
           cd_offset = u(tail, eocd + 16, 4);
  // Single-disk archives only (as torch.save writes): the entries on this disk are all.
  NEPHRO_CHECK(u(tail, eocd + 4, 2) == 0 && u(tail, eocd + 6, 2) == 0 &&
                   u(tail, eocd + 8, 2) == count,
               what, " is a corrupt zip archive (multi-disk end record)");
  if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
    const uint64_t eocd_pos = size - tail_len + eocd;
    NEPHRO_CHECK(eocd_pos >= 20, what, " is a corrupt zip archive (zip64 locator missing)");
    const std::string loc = bytes(eocd_pos - 20, 20);
    NEPHRO_CHECK(u(loc, 0, 4) == 0x07064b50, what,
                 " is a corrupt zip archive (zip64 locator missing)");
    const std::string e64 = bytes(u(loc, 8, 8), 56);
    NEPHRO_CHECK(u(e64, 0, 4) == 0x06064b50, what, " is a corrupt zip archive (zip64 end record)");
    count = u(e64, 32, 8);
    cd_size = u(e64, 40, 8);
    cd_offset = u(e64, 48, 8);
  }
  constexpr uint64_t kCdh = 46;
  NEPHRO_CHECK(cd_offset <= size && cd_size <= size - cd_offset && count <= cd_size / kCdh, what,
               " is a corrupt or truncated zip archive (central directory of ", count,
               " entries, ", cd_size, " bytes at ", cd_offset, " in a ", size, "-byte file)");
  const std::string cd = bytes(cd_offset, static_cast<size_t>(cd_size));
  std::map<std::string, ZipEntry> index;
  std::string archive;  // "<folder>/" of the first entry
  size_t at = 0;
  for (uint64_t e = 0; e < count; ++e) {
    NEPHRO_CHECK(at + kCdh <= cd.size() && u(cd, at, 4) == 0x02014b50, what,
                 " is a corrupt zip archive (central directory entry ", e, ")");
    const uint64_t method = u(cd, at + 10, 2);
    uint64_t comp = u(cd, at + 20, 4), uncomp = u(cd, at + 24, 4), local = u(cd, at + 42, 4);
    const size_t name_len = u(cd, at + 28, 2), extra_len = u(cd, at + 30, 2),
                 comment_len = u(cd, at + 32, 2);
    NEPHRO_CHECK(at + kCdh + name_len + extra_len + comment_len <= cd.size(), what,
                 " is a corrupt zip archive (central directory entry ", e, ")");
    const std::string name = cd.substr(at + kCdh, name_len);
    // Zip64 extended information: the 8-byte fields present are those set to ~0.
    for (size_t x = at + kCdh + name_len; x + 4 <= at + kCdh + name_len + extra_len;) {
      const uint64_t id = u(cd, x, 2), len = u(cd, x + 2, 2);
      size_t f = x + 4;
      const size_t f_end = std::min<size_t>(f + len, at + kCdh + name_len + extra_len);
      if (id == 1) {
        for (uint64_t* field : {&uncomp, &comp, &local}) {
          if (*field == 0xFFFFFFFF && f + 8 <= f_end) {
            *field = u(cd, f, 8);
            f += 8;
          }
        }
      }
      x += 4 + len;
    }
    // Record names are "<archive>/<record>", <archive> being the first entry's folder,
    // as PyTorchStreamReader looks them up; other names are not records.
    const auto slash = name.find('/');
    if (e == 0) {
      NEPHRO_CHECK(slash != std::string::npos && slash > 0, what,
                   " is a zip file but not a torch.save checkpoint (its first file is not in "
                   "a folder)");
      archive = name.substr(0, slash + 1);
    }
    const bool in_archive = name.compare(0, archive.size(), archive) == 0;
    const std::string record = in_archive ? name.substr(archive.size()) : name;
    NEPHRO_CHECK(method == 0, what, ": zip record '", record,
                 "' is compressed; torch.save writes stored records only (re-save the file "
                 "with torch.save)");
    NEPHRO_CHECK(comp == uncomp && local <= size && comp <= size - local, what,
                 " is a corrupt or truncated zip archive (record '", record, "' of ", uncomp,
                 " bytes does not fit in the ", size, "-byte file)");
    if (in_archive) index[record] = ZipEntry{uncomp, local};
    at += kCdh + name_len + extra_len + comment_len;
  }
  NEPHRO_CHECK(count > 0, what, " is an empty zip archive");
  // The format version, checked here as PyTorchStreamReader would, so that its constructor does not throw: when it does, LibTorch's zip reader
  // leaks its state.
  auto version = index.find(".data/version");
  if (version == index.end()) version = index.find("version");
  NEPHRO_CHECK(version != index.end(), what,
               " is a zip file but not a torch.save checkpoint (no version record)");
  const std::string local = bytes(version->second.local_header, 30);
  NEPHRO_CHECK(u(local, 0, 4) == 0x04034b50 && version->second.size <= 64, what,
               " is a corrupt zip archive (version record)");
  const std::string text =
      bytes(version->second.local_header + 30 + u(local, 26, 2) + u(local, 28, 2),
            static_cast<size_t>(version->second.size));
  uint64_t v = 0;
  size_t k = 0;
  while (k < text.size() && (text[k] == ' ' || text[k] == '\t' || text[k] == '\n')) ++k;
  const size_t digits = k;
  while (k < text.size() && text[k] >= '0' && text[k] <= '9' && k - digits < 6) v = v * 10 + (text[k++] - '0');
  NEPHRO_CHECK(k > digits && v >= ser::kMinSupportedFileFormatVersion &&
                   v <= ser::kMaxSupportedFileFormatVersion,
               what, " has an unsupported checkpoint format version (expected ",
               ser::kMinSupportedFileFormatVersion, "..", ser::kMaxSupportedFileFormatVersion, ")");
  return index;
}

// Checks a storage declared by the pickle against its record before reading it.
size_t storage_bytes(const std::string& what, const std::string& key, at::ScalarType dtype,
                     int64_t numel, uint64_t record_size) {
  uint64_t need = 0;
  NEPHRO_CHECK(numel >= 0 && !__builtin_mul_overflow(static_cast<uint64_t>(numel),
                                                     c10::elementSize(dtype), &need),
               what, ": storage '", key, "' declares an impossible size (", numel,
               " elements; corrupt checkpoint)");
  NEPHRO_CHECK(record_size >= need, what, ": storage '", key, "' holds ", record_size,
               " bytes, expected ", need, " (truncated or corrupt)");
  return static_cast<size_t>(need);
}

at::Tensor storage_tensor(at::DataPtr data, size_t nbytes, at::ScalarType dtype, int64_t numel) {
  // Adopt the record's buffer without copying: the tensor owns the DataPtr.
  c10::Storage storage(c10::Storage::use_byte_size_t(), nbytes, std::move(data),
                       /*allocator=*/nullptr, /*resizable=*/false);
  return at::empty({0}, at::TensorOptions().dtype(dtype)).set_(storage, 0, {numel}, {1});
}

Value load_from_adapter(std::shared_ptr<ser::ReadAdapterInterface> in, const std::string& what) {
  const auto index = read_zip_index(*in, what);
  std::unique_ptr<ser::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<ser::PyTorchStreamReader>(in);
  } catch (const c10::Error& e) {
    NEPHRO_FAIL(what, " is a corrupt or truncated archive (", zip_reason(e), ")");
  }
  try {
    NEPHRO_CHECK(index.count("data.pkl") && reader->hasRecord("data.pkl"), what,
                 " is a zip file but not a torch.save checkpoint (no data.pkl record; a "
                 "TorchScript archive or another format?)");
    auto [pickle_data, pickle_size] = reader->getRecord("data.pkl");
    auto loader = [&](const std::string& key, at::ScalarType dtype, int64_t numel) {
      const std::string record = "data/" + key;
      const auto it = index.find(record);
      NEPHRO_CHECK(it != index.end() && reader->hasRecord(record), what,
                   " lacks storage record '", record, "' (truncated or corrupt)");
      const size_t need = storage_bytes(what, key, dtype, numel, it->second.size);
      auto [data, size] = reader->getRecord(record);
      NEPHRO_CHECK(size >= need, what, ": storage '", key, "' holds ", size, " bytes, expected ",
                   need, " (truncated or corrupt)");
      return storage_tensor(std::move(data), need, dtype, numel);
    };
    return detail::unpickle(static_cast<const char*>(pickle_data.get()), pickle_size, loader,
                            what);
  } catch (const c10::Error& e) {
    NEPHRO_FAIL(what, " is corrupt (", zip_reason(e), ")");
  }
}

}  // namespace

Value load_pickle_file(const std::string& path) {
  check_container(path);
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  NEPHRO_CHECK(!ec, "cannot read checkpoint '", path, "': ", ec.message());
  return load_from_adapter(std::make_shared<FileBytesAdapter>(path, static_cast<size_t>(size)),
                           "checkpoint '" + path + "'");
}

Value load_pickle_memory(const void* data, size_t size, const std::string& what) {
  check_magic(static_cast<const unsigned char*>(data), size, what);
  return load_from_adapter(std::make_shared<BytesAdapter>(data, size), what);
}

std::map<std::string, uint64_t> read_zip_records_memory(const void* data, size_t size,
                                                        const std::string& what) {
  check_magic(static_cast<const unsigned char*>(data), size, what);
  std::map<std::string, uint64_t> records;
  for (const auto& [name, entry] : read_zip_index(BytesAdapter(data, size), what))
    records[name] = entry.size;
  return records;
}

Value unpickle_memory(const void* data, size_t size,
                      const std::map<std::string, std::string>& records, const std::string& what) {
  auto loader = [&](const std::string& key, at::ScalarType dtype, int64_t numel) {
    const auto it = records.find(key);
    NEPHRO_CHECK(it != records.end(), what, " lacks storage record 'data/", key, "'");
    const size_t need = storage_bytes(what, key, dtype, numel, it->second.size());
    at::Tensor t = at::empty({numel}, at::TensorOptions().dtype(dtype));
    if (need > 0) std::memcpy(t.data_ptr(), it->second.data(), need);
    return t;
  };
  try {
    return detail::unpickle(static_cast<const char*>(data), size, loader, what);
  } catch (const c10::Error& e) {
    NEPHRO_FAIL(what, " is corrupt (", zip_reason(e), ")");
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
