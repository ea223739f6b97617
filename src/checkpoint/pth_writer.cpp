// Writing PyTorch zip checkpoints that Python's torch.load reads: pickle protocol 2
// in <archive>/data.pkl, one record per tensor in <archive>/data/<key>.
// Ref: torch/serialization.py::_save, Lib/pickle.py (opcodes).
#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <fstream>

#include "nephroseg/checkpoint/pth.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/atomic_file.h"

namespace nephroseg::checkpoint {
namespace {

const char* storage_type_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "FloatStorage";
    case at::kHalf: return "HalfStorage";
    case at::kBFloat16: return "BFloat16Storage";
    case at::kDouble: return "DoubleStorage";
    case at::kLong: return "LongStorage";
    case at::kInt: return "IntStorage";
    case at::kShort: return "ShortStorage";
    case at::kChar: return "CharStorage";
    case at::kByte: return "ByteStorage";
    case at::kBool: return "BoolStorage";
    default: NEPHRO_FAIL("cannot save tensors of dtype ", t);
  }
}

class Pickler {
 public:
  explicit Pickler(std::vector<at::Tensor>* storages) : storages_(storages) {}

  std::string finish(const Value& root) {
    out_ += "\x80\x02";  // PROTO 2
    write(root);
    out_ += '.';  // STOP
    return std::move(out_);
  }

 private:
  void op(char c) { out_.push_back(c); }
  void u32(uint32_t v) {
    for (int k = 0; k < 4; ++k) out_.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
  }
  void global(const char* module, const char* name) {
    op('c');
    out_ += module;
    out_ += '\n';
    out_ += name;
    out_ += '\n';
  }
  void str(const std::string& s) {
    op('X');
    u32(static_cast<uint32_t>(s.size()));
    out_ += s;
  }
  void integer(int64_t v) {
    if (v >= INT32_MIN && v <= INT32_MAX) {
      op('J');
      u32(static_cast<uint32_t>(static_cast<int32_t>(v)));
    } else {
      op('\x8a');  // LONG1, 8-byte two's complement
      out_.push_back(8);
      for (int k = 0; k < 8; ++k) out_.push_back(static_cast<char>((static_cast<uint64_t>(v) >> (8 * k)) & 0xff));
    }
  }
  void floating(double v) {
    op('G');
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    for (int k = 7; k >= 0; --k) out_.push_back(static_cast<char>((bits >> (8 * k)) & 0xff));
  }
  void int_tuple(at::IntArrayRef xs) {
    op('(');
    for (int64_t x : xs) integer(x);
    op('t');
  }
  void tensor(const at::Tensor& t_in) {
    at::Tensor t = t_in.detach().cpu().contiguous();
    if (t.storage_offset() != 0 || t.storage().nbytes() != static_cast<size_t>(t.numel()) * t.element_size()) {
      t = t.clone();
    }
    const std::string key = std::to_string(storages_->size());
    storages_->push_back(t);
    global("torch._utils", "_rebuild_tensor_v2");
    op('(');
    op('(');  // persistent id: ('storage', torch.XStorage, key, 'cpu', numel)
    str("storage");
    global("torch", storage_type_name(t.scalar_type()));
    str(key);
    str("cpu");
    integer(t.numel());
    op('t');
    op('Q');  // BINPERSID
    integer(0);
    int_tuple(t.sizes());
    int_tuple(t.strides());
    op('\x89');  // requires_grad False
    global("collections", "OrderedDict");
    op(')');
    op('R');  // backward hooks: OrderedDict()
    op('t');
    op('R');
  }
  void write(const Value& v) {
    switch (v.kind) {
      case Value::Kind::kNone: op('N'); break;
      case Value::Kind::kBool: op(v.b ? '\x88' : '\x89'); break;
      case Value::Kind::kInt: integer(v.i); break;
      case Value::Kind::kFloat: floating(v.f); break;
      case Value::Kind::kString: str(v.s); break;
      case Value::Kind::kTensor: tensor(v.tensor); break;
      case Value::Kind::kTuple:
        op('(');
        for (const auto& it : v.items) write(it);
        op('t');
        break;
      case Value::Kind::kList:
        op(']');
        if (!v.items.empty()) {
          op('(');
          for (const auto& it : v.items) write(it);
          op('e');
        }
        break;
      case Value::Kind::kDict:
        if (v.s == "OrderedDict") {
          global("collections", "OrderedDict");
          op(')');
          op('R');
        } else {
          op('}');
        }
        if (!v.entries.empty()) {
          op('(');
          for (const auto& [k, val] : v.entries) {
            write(k);
            write(val);
          }
          op('u');
        }
        break;
      case Value::Kind::kOpaque:
        NEPHRO_FAIL("cannot save an opaque pickled object ('", v.s, "')");
    }
  }

  std::vector<at::Tensor>* storages_;
  std::string out_;
};

}  // namespace

void save_pickle_file(const std::string& path, const Value& root) {
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream file(tmp, std::ios::binary);
    NEPHRO_CHECK(file.good(), "cannot write checkpoint '", tmp, "'");
    {
      caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t n) -> size_t {
        file.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
        return file.good() ? n : 0;
      });
      std::vector<at::Tensor> storages;
      const std::string pickle = Pickler(&storages).finish(root);
      writer.writeRecord("data.pkl", pickle.data(), pickle.size());
      for (size_t k = 0; k < storages.size(); ++k) {
        const at::Tensor& t = storages[k];
        writer.writeRecord("data/" + std::to_string(k), t.data_ptr(),
                           static_cast<size_t>(t.numel()) * t.element_size());
      }
      writer.writeEndOfFile();
    }
    file.close();
    NEPHRO_CHECK(file.good(), "error while writing checkpoint '", path, "' (disk full?)");
  });
}

Value make_state_dict_value(const StateDict& sd) {
  Value v;
  v.kind = Value::Kind::kDict;
  v.s = "OrderedDict";
  for (const auto& key : sd.keys()) {
    Value t;
    t.kind = Value::Kind::kTensor;
    t.tensor = sd.at(key);
    v.entries.emplace_back(make_string(key), std::move(t));
  }
  return v;
}

void save_state_dict(const std::string& path, const StateDict& sd) {
  save_pickle_file(path, make_state_dict_value(sd));
}

Value make_int(int64_t x) {
  Value v;
  v.kind = Value::Kind::kInt;
  v.i = x;
  return v;
}
Value make_float(double x) {
  Value v;
  v.kind = Value::Kind::kFloat;
  v.f = x;
  return v;
}
Value make_string(const std::string& x) {
  Value v;
  v.kind = Value::Kind::kString;
  v.s = x;
  return v;
}
Value make_dict(std::vector<std::pair<std::string, Value>> entries) {
  Value v;
  v.kind = Value::Kind::kDict;
  for (auto& [k, val] : entries) v.entries.emplace_back(make_string(k), std::move(val));
  return v;
}

}  // namespace nephroseg::checkpoint
