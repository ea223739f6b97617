// A restricted pickle VM. Ref: CPython Lib/pickle.py (opcode semantics) and
// torch/serialization.py + torch/_utils.py (what torch.save writes: persistent ids
// ('storage', <torch.XStorage>, key, location, numel) and
// _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)).
//
// Safety by construction: globals are looked up in a fixed allow-list and mapped to
// built-in behaviours; nothing is imported or executed. Anything else is refused
// with an error that names the opcode or the global.
#include "unpickler.h"

#include <ATen/ATen.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <unordered_map>

#include "nephroseg/core/error.h"

namespace nephroseg::checkpoint::detail {
namespace {

struct Node;
using NodeP = std::shared_ptr<Node>;

// Internal object: a Value plus the VM-only kinds (marks, globals, storages).
struct Node {
  enum class K {
    kNone, kBool, kInt, kFloat, kStr, kBytes, kTensor, kList, kTuple, kDict,
    kGlobal, kStorageType, kOpaque, kMark
  };
  K k = K::kNone;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;  // kStr, kBytes, kGlobal (module.name), kOpaque (name)
  at::Tensor t;
  at::ScalarType dtype = at::kFloat;  // kStorageType
  std::vector<NodeP> items;           // kList, kTuple
  std::vector<std::pair<NodeP, NodeP>> entries;  // kDict
  bool ordered = false;               // dict came from collections.OrderedDict
  // Nesting depth (1 for a leaf). Exact because a container that is already stored
  // in another one is never modified again (see Machine::adopt).
  int depth = 1;
  bool contained = false;             // stored in a list, tuple or dict
  std::unique_ptr<std::unordered_map<std::string, size_t>> index;  // kDict: str key -> entry
};

NodeP make(Node::K k) {
  auto n = std::make_shared<Node>();
  n->k = k;
  return n;
}

struct StorageName {
  const char* name;
  at::ScalarType type;
};
constexpr StorageName kStorageTypes[] = {
    {"torch.FloatStorage", at::kFloat},   {"torch.HalfStorage", at::kHalf},
    {"torch.BFloat16Storage", at::kBFloat16}, {"torch.DoubleStorage", at::kDouble},
    {"torch.LongStorage", at::kLong},     {"torch.IntStorage", at::kInt},
    {"torch.ShortStorage", at::kShort},   {"torch.CharStorage", at::kChar},
    {"torch.ByteStorage", at::kByte},     {"torch.BoolStorage", at::kBool},
};

// Globals accepted as opaque placeholders: numpy scalars that training scripts put in
// checkpoints next to the weights ({"epoch": 3, "best": np.float64(..)}). They are
// never evaluated; a state dict cannot contain them.
constexpr const char* kOpaqueGlobals[] = {
    "numpy.core.multiarray.scalar", "numpy.dtype", "_codecs.encode",
    "numpy.core.multiarray._reconstruct", "numpy.ndarray", "torch.device",
    "argparse.Namespace",
};

class Machine {
 public:
  Machine(const char* data, size_t size, const StorageLoader& loader, const std::string& what)
      : p_(reinterpret_cast<const unsigned char*>(data)), end_(p_ + size), loader_(loader),
        what_(what), refs_left_(budget(kPickleRefsPerByte, size, kPickleRefsBase)),
        values_left_(budget(kPickleValuesPerByte, size, kPickleValuesBase)),
        value_bytes_left_(budget(kPickleValueBytesPerByte, size, kPickleValueBytesBase)) {}

  NodeP run() {
    while (true) {
      NEPHRO_CHECK(p_ < end_, what_, ": pickle data ends before STOP (truncated checkpoint)");
      const unsigned char op = *p_++;
      switch (op) {
        case 0x80: take(1); break;                          // PROTO
        case 0x95: take(8); break;                          // FRAME
        case '.': {                                         // STOP
          NEPHRO_CHECK(!stack_.empty(), what_, ": empty pickle");
          return stack_.back();
        }
        case '(': push(make(Node::K::kMark)); break;        // MARK
        case '0': pop(); break;                             // POP
        case '1': pop_mark(); break;                        // POP_MARK
        case '2': push(top()); break;                       // DUP
        case 'N': push(make(Node::K::kNone)); break;        // NONE
        case 0x88: push_bool(true); break;                  // NEWTRUE
        case 0x89: push_bool(false); break;                 // NEWFALSE
        case 'J': push_int(read_le_signed(4)); break;       // BININT
        case 'K': push_int(read_le_unsigned(1)); break;     // BININT1
        case 'M': push_int(read_le_unsigned(2)); break;     // BININT2
        case 0x8a: {                                        // LONG1
          const size_t n = read_le_unsigned(1);
          push_int(read_long(n));
          break;
        }
        case 0x8b: {                                        // LONG4
          const size_t n = read_le_unsigned(4);
          push_int(read_long(n));
          break;
        }
        case 'I': push_text_int(); break;                   // INT (text)
        case 'L': push_text_int(); break;                   // LONG (text)
        case 'G': {                                         // BINFLOAT (big-endian)
          const unsigned char* b = take(8);
          uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | b[k];
          double v;
          std::memcpy(&v, &bits, 8);
          auto n = make(Node::K::kFloat);
          n->f = v;
          push(n);
          break;
        }
        case 'F': {                                         // FLOAT (text)
          auto n = make(Node::K::kFloat);
          n->f = parse_text_float(read_line());
          push(n);
          break;
        }
        case 'X': push_str(read_le_unsigned(4), Node::K::kStr); break;   // BINUNICODE
        case 0x8c: push_str(read_le_unsigned(1), Node::K::kStr); break;  // SHORT_BINUNICODE
        case 0x8d: push_str(read_le_unsigned(8), Node::K::kStr); break;  // BINUNICODE8
        case 'T': push_str(read_le_unsigned(4), Node::K::kStr); break;   // BINSTRING
        case 'U': push_str(read_le_unsigned(1), Node::K::kStr); break;   // SHORT_BINSTRING
        case 'B': push_str(read_le_unsigned(4), Node::K::kBytes); break; // BINBYTES
        case 'C': push_str(read_le_unsigned(1), Node::K::kBytes); break; // SHORT_BINBYTES
        case 0x8e: push_str(read_le_unsigned(8), Node::K::kBytes); break;// BINBYTES8
        case ')': push(make(Node::K::kTuple)); break;       // EMPTY_TUPLE
        case 't': {                                         // TUPLE
          auto n = make(Node::K::kTuple);
          for (auto& v : pop_to_mark()) append(n, v, "TUPLE");
          push(n);
          break;
        }
        case 0x85: push_tuple(1); break;                    // TUPLE1
        case 0x86: push_tuple(2); break;                    // TUPLE2
        case 0x87: push_tuple(3); break;                    // TUPLE3
        case ']': push(make(Node::K::kList)); break;        // EMPTY_LIST
        case 'l': {                                         // LIST
          auto n = make(Node::K::kList);
          for (auto& v : pop_to_mark()) append(n, v, "LIST");
          push(n);
          break;
        }
        case 'a': {                                         // APPEND
          NodeP v = pop();
          NodeP list = top();
          expect(list, Node::K::kList, "APPEND");
          append(list, v, "APPEND");
          break;
        }
        case 'e': {                                         // APPENDS
          auto vs = pop_to_mark();
          NodeP list = top();
          expect(list, Node::K::kList, "APPENDS");
          for (auto& v : vs) append(list, v, "APPENDS");
          break;
        }
        case '}': push(make(Node::K::kDict)); break;        // EMPTY_DICT
        case 'd': {                                         // DICT
          auto vs = pop_to_mark();
          auto n = make(Node::K::kDict);
          set_items(n, vs);
          push(n);
          break;
        }
        case 's': {                                         // SETITEM
          NodeP v = pop();
          NodeP k = pop();
          NodeP d = top();
          expect(d, Node::K::kDict, "SETITEM");
          set_items(d, {k, v});
          break;
        }
        case 'u': {                                         // SETITEMS
          auto vs = pop_to_mark();
          NodeP d = top();
          expect(d, Node::K::kDict, "SETITEMS");
          set_items(d, vs);
          break;
        }
        case 'c': {                                         // GLOBAL
          std::string module = read_line();
          std::string name = read_line();
          push(global(module + "." + name));
          break;
        }
        case 0x93: {                                        // STACK_GLOBAL
          NodeP name = pop();
          NodeP module = pop();
          expect(name, Node::K::kStr, "STACK_GLOBAL");
          expect(module, Node::K::kStr, "STACK_GLOBAL");
          push(global(module->s + "." + name->s));
          break;
        }
        case 'R': {                                         // REDUCE
          NodeP args = pop();
          NodeP fn = pop();
          push(reduce(fn, args));
          break;
        }
        case 0x81: {                                        // NEWOBJ
          NodeP args = pop();
          NodeP cls = pop();
          push(reduce(cls, args));
          break;
        }
        case 'b': {                                         // BUILD
          NodeP state = pop();
          build(top(), state);
          break;
        }
        case 'Q': {                                         // BINPERSID
          NodeP pid = pop();
          push(persistent_load(pid));
          break;
        }
        case 'q': memo_put(read_le_unsigned(1)); break;     // BINPUT
        case 'r': memo_put(read_le_unsigned(4)); break;     // LONG_BINPUT
        case 'p': memo_put(parse_text_index(read_line(), "PUT")); break;  // PUT
        case 0x94: memo_put(memo_.size()); break;           // MEMOIZE
        case 'h': memo_get(read_le_unsigned(1)); break;     // BINGET
        case 'j': memo_get(read_le_unsigned(4)); break;     // LONG_BINGET
        case 'g': memo_get(parse_text_index(read_line(), "GET")); break;  // GET
        default:
          NEPHRO_FAIL(what_, ": unsupported pickle opcode 0x", to_hex(op), " at byte ",
                      (p_ - 1) - begin(),
                      " (only the subset torch.save uses for state dicts is accepted)");
      }
    }
  }

 private:
  const unsigned char* begin() const { return start_; }

  static std::string to_hex(unsigned char c) {
    const char* digits = "0123456789abcdef";
    return {digits[c >> 4], digits[c & 15]};
  }

  const unsigned char* take(size_t n) {
    NEPHRO_CHECK(static_cast<size_t>(end_ - p_) >= n, what_, ": pickle data truncated");
    const unsigned char* at = p_;
    p_ += n;
    return at;
  }
  uint64_t read_le_unsigned(size_t n) {
    const unsigned char* b = take(n);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(b[k]) << (8 * k);
    return v;
  }
  int64_t read_le_signed(size_t n) {
    uint64_t v = read_le_unsigned(n);
    if (n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t(0) << (8 * n);
    return static_cast<int64_t>(v);
  }
  int64_t read_long(size_t n) {
    NEPHRO_CHECK(n <= 8, what_, ": integer too large in pickle (", n, " bytes)");
    if (n == 0) return 0;
    return read_le_signed(n);
  }
  std::string read_line() {
    const unsigned char* start = p_;
    while (p_ < end_ && *p_ != '\n') ++p_;
    NEPHRO_CHECK(p_ < end_, what_, ": pickle data truncated");
    std::string s(reinterpret_cast<const char*>(start), p_ - start);
    ++p_;
    return s;
  }

  void push(NodeP n) { stack_.push_back(std::move(n)); }
  NodeP top() {
    NEPHRO_CHECK(!stack_.empty(), what_, ": corrupt pickle (stack underflow)");
    return stack_.back();
  }
  NodeP pop() {
    NodeP n = top();
    stack_.pop_back();
    return n;
  }
  std::vector<NodeP> pop_to_mark() {
    size_t k = stack_.size();
    while (k > 0 && stack_[k - 1]->k != Node::K::kMark) --k;
    NEPHRO_CHECK(k > 0, what_, ": corrupt pickle (no MARK)");
    std::vector<NodeP> out(stack_.begin() + k, stack_.end());
    stack_.resize(k - 1);
    return out;
  }
  void pop_mark() { pop_to_mark(); }
  void push_bool(bool v) {
    auto n = make(Node::K::kBool);
    n->b = v;
    push(n);
  }
  void push_int(int64_t v) {
    auto n = make(Node::K::kInt);
    n->i = v;
    push(n);
  }
  void push_text_int() {
    std::string line = read_line();
    if (line == "01") return push_bool(true);
    if (line == "00") return push_bool(false);
    if (!line.empty() && line.back() == 'L') line.pop_back();
    errno = 0;
    char* end = nullptr;
    const long long v = line.empty() ? 0 : std::strtoll(line.c_str(), &end, 10);
    NEPHRO_CHECK(!line.empty() && end == line.c_str() + line.size() && errno == 0, what_,
                 ": corrupt pickle (text integer '", printable(line), "' is not a 64-bit number)");
    push_int(v);
  }
  double parse_text_float(const std::string& line) {
    errno = 0;
    char* end = nullptr;
    const double v = line.empty() ? 0 : std::strtod(line.c_str(), &end);
    NEPHRO_CHECK(!line.empty() && end == line.c_str() + line.size(), what_,
                 ": corrupt pickle (text float '", printable(line), "' is not a number)");
    return v;
  }
  uint64_t parse_text_index(const std::string& line, const char* op) {
    uint64_t v = 0;
    bool ok = !line.empty() && line.size() <= 19;
    for (char c : line) {
      if (c < '0' || c > '9') ok = false;
      if (ok) v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    NEPHRO_CHECK(ok, what_, ": corrupt pickle (", op, " index '", printable(line),
                 "' is not a number)");
    return v;
  }
  // At most 40 characters of s, non-printable bytes as '?'.
  static std::string printable(const std::string& s) {
    std::string out;
    for (size_t k = 0; k < s.size() && k < 40; ++k) {
      const unsigned char c = static_cast<unsigned char>(s[k]);
      out += c >= 32 && c < 127 ? static_cast<char>(c) : '?';
    }
    if (s.size() > 40) out += "...";
    return out;
  }
  void push_str(uint64_t n, Node::K kind) {
    const unsigned char* b = take(n);
    auto node = make(kind);
    node->s.assign(reinterpret_cast<const char*>(b), n);
    push(node);
  }
  void push_tuple(size_t n) {
    auto t = make(Node::K::kTuple);
    std::vector<NodeP> items(n);
    for (size_t k = n; k-- > 0;) items[k] = pop();
    for (auto& v : items) append(t, v, "TUPLE");
    push(t);
  }
  void expect(const NodeP& n, Node::K k, const char* op) {
    NEPHRO_CHECK(n->k == k, what_, ": corrupt pickle (", op, " on a wrong object)");
  }
  void set_items(const NodeP& d, const std::vector<NodeP>& kv) {
    NEPHRO_CHECK(kv.size() % 2 == 0, what_, ": corrupt pickle (odd SETITEMS)");
    for (size_t k = 0; k < kv.size(); k += 2) {
      adopt(d, kv[k], "SETITEM");
      adopt(d, kv[k + 1], "SETITEM");
      if (kv[k]->k == Node::K::kStr) {
        // A repeated string key replaces the value, as in a Python dict; the index
        // keeps this linear in the number of entries.
        if (!d->index) d->index = std::make_unique<std::unordered_map<std::string, size_t>>();
        auto [it, fresh] = d->index->try_emplace(kv[k]->s, d->entries.size());
        if (!fresh) {
          d->entries[it->second].second = kv[k + 1];
          continue;
        }
      }
      d->entries.emplace_back(kv[k], kv[k + 1]);
    }
  }
  // Records that `child` is stored in `parent`. Limits by construction:
  //  - a container already stored in another one is never modified again, which is
  //    how torch.save writes (children are complete before their parent takes them);
  //    this rejects every reference cycle (no shared_ptr cycle can form) and keeps
  //    the depth of each node exact;
  //  - nesting deeper than kMaxPickleDepth is refused, so the recursive conversion and
  //    destruction of the tree cannot overflow the C++ stack;
  //  - the total number of stored references is bounded by the pickle's size.
  void adopt(const NodeP& parent, const NodeP& child, const char* op) {
    NEPHRO_CHECK(!parent->contained, what_, ": corrupt pickle (", op,
                 " modifies an object already stored in another one; cyclic or "
                 "self-referencing objects are not read)");
    NEPHRO_CHECK(parent.get() != child.get(), what_, ": corrupt pickle (", op,
                 " stores an object inside itself; cyclic objects are not read)");
    NEPHRO_CHECK(refs_left_ > 0, what_, ": pickle holds too many object references (limit ",
                 refs_limit(), " for a ", end_ - start_, "-byte pickle)");
    --refs_left_;
    child->contained = true;
    parent->depth = std::max(parent->depth, child->depth + 1);
    NEPHRO_CHECK(parent->depth <= kMaxPickleDepth, what_, ": pickle nesting deeper than ",
                 kMaxPickleDepth, " levels");
  }
  void append(const NodeP& list, const NodeP& v, const char* op) {
    adopt(list, v, op);
    list->items.push_back(v);
  }
  static uint64_t budget(uint64_t per_byte, uint64_t size, uint64_t base) {
    uint64_t v = 0;
    if (__builtin_mul_overflow(per_byte, size, &v) || __builtin_add_overflow(v, base, &v)) {
      return ~uint64_t(0);
    }
    return v;
  }
  uint64_t refs_limit() const {
    return budget(kPickleRefsPerByte, static_cast<uint64_t>(end_ - start_), kPickleRefsBase);
  }
  // The memo is a map: its size grows with the PUT opcodes actually executed (each
  // costs at least two bytes of pickle), never with the largest index named.
  void memo_put(uint64_t idx) { memo_[idx] = top(); }
  void memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    NEPHRO_CHECK(it != memo_.end(), what_, ": corrupt pickle (memo ", idx, " was never stored)");
    push(it->second);
  }

  NodeP global(const std::string& name) {
    static const char* kAllowed[] = {
        "collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor", "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state", "builtins.set", "__builtin__.set",
    };
    for (const auto& st : kStorageTypes) {
      if (name == st.name) {
        auto n = make(Node::K::kStorageType);
        n->s = name;
        n->dtype = st.type;
        return n;
      }
    }
    for (const char* a : kAllowed) {
      if (name == a) {
        auto n = make(Node::K::kGlobal);
        n->s = name;
        return n;
      }
    }
    for (const char* a : kOpaqueGlobals) {
      if (name == a) {
        auto n = make(Node::K::kOpaque);
        n->s = name;
        return n;
      }
    }
    NEPHRO_FAIL(what_, ": refusing pickle global '", name,
                "' (not part of a PyTorch state dict; nephroseg never executes pickled code)");
  }

  static std::vector<int64_t> int_list(const NodeP& n, const std::string& what) {
    NEPHRO_CHECK(n->k == Node::K::kTuple || n->k == Node::K::kList, what,
                 ": corrupt tensor record (size/stride is not a tuple)");
    std::vector<int64_t> out;
    for (const auto& v : n->items) {
      NEPHRO_CHECK(v->k == Node::K::kInt, what, ": corrupt tensor record (non-integer size)");
      out.push_back(v->i);
    }
    return out;
  }

  NodeP rebuild_tensor(const std::vector<NodeP>& a) {
    NEPHRO_CHECK(a.size() >= 4 && a[0]->k == Node::K::kTensor && a[1]->k == Node::K::kInt, what_,
                 ": corrupt tensor record");
    const at::Tensor& storage = a[0]->t;  // 1-d tensor owning the whole storage
    const std::vector<int64_t> sizes = int_list(a[2], what_);
    const std::vector<int64_t> strides = int_list(a[3], what_);
    NEPHRO_CHECK(sizes.size() == strides.size(), what_, ": corrupt tensor record (rank)");
    NEPHRO_CHECK(sizes.size() <= kMaxTensorRank, what_, ": corrupt tensor record (rank ",
                 sizes.size(), " > ", kMaxTensorRank, ")");
    const int64_t offset = a[1]->i;
    NEPHRO_CHECK(offset >= 0, what_, ": corrupt tensor record (negative storage offset)");
    // Bounds check before any view exists, every step overflow-checked: the view's
    // element count and the last element it addresses must both fit in the storage.
    // (Overlapping views, e.g. from expand(), would address fewer elements than they
    // hold; torch.save never writes them for module parameters and they are refused.)
    int64_t last = offset, numel = 1;
    bool overflow = false;
    for (size_t d = 0; d < sizes.size(); ++d) {
      NEPHRO_CHECK(sizes[d] >= 0 && strides[d] >= 0, what_,
                   ": corrupt tensor record (negative size or stride)");
      overflow |= __builtin_mul_overflow(numel, sizes[d], &numel);
    }
    if (numel > 0) {
      for (size_t d = 0; d < sizes.size(); ++d) {
        int64_t span = 0;
        overflow |= __builtin_mul_overflow(sizes[d] - 1, strides[d], &span);
        overflow |= __builtin_add_overflow(last, span, &last);
      }
    }
    NEPHRO_CHECK(!overflow, what_, ": corrupt tensor record (size x stride overflows)");
    NEPHRO_CHECK(numel == 0 || (last < storage.numel() && numel <= storage.numel()), what_,
                 ": tensor view exceeds its storage (", numel, " elements up to index ", last,
                 ", storage holds ", storage.numel(), "; corrupt checkpoint)");
    auto n = make(Node::K::kTensor);
    n->t = at::empty({0}, storage.options()).set_(storage.storage(), offset, sizes, strides);
    return n;
  }

  NodeP reduce(const NodeP& fn, const NodeP& args) {
    if (fn->k == Node::K::kOpaque) {
      auto n = make(Node::K::kOpaque);
      n->s = fn->s;
      return n;
    }
    NEPHRO_CHECK(fn->k == Node::K::kGlobal, what_, ": corrupt pickle (REDUCE on a non-callable)");
    NEPHRO_CHECK(args->k == Node::K::kTuple, what_, ": corrupt pickle (REDUCE arguments)");
    const auto& a = args->items;
    if (fn->s == "collections.OrderedDict") {
      auto d = make(Node::K::kDict);
      d->ordered = true;
      if (!a.empty() && a[0]->k == Node::K::kList) {  // OrderedDict([(k, v), ...])
        for (const auto& kv : a[0]->items) {
          if (kv->k == Node::K::kTuple && kv->items.size() == 2) set_items(d, kv->items);
        }
      }
      return d;
    }
    if (fn->s == "torch._utils._rebuild_tensor_v2" || fn->s == "torch._utils._rebuild_tensor") {
      return rebuild_tensor(a);
    }
    if (fn->s == "torch._utils._rebuild_parameter" ||
        fn->s == "torch._utils._rebuild_parameter_with_state") {
      NEPHRO_CHECK(!a.empty() && a[0]->k == Node::K::kTensor, what_, ": corrupt parameter record");
      return a[0];
    }
    if (fn->s == "builtins.set" || fn->s == "__builtin__.set") {
      auto l = make(Node::K::kList);
      if (!a.empty() && a[0]->k == Node::K::kList) {
        for (const auto& v : a[0]->items) append(l, v, "set()");
      }
      return l;
    }
    NEPHRO_FAIL(what_, ": cannot call '", fn->s, "'");
  }

  void build(const NodeP& target, const NodeP& state) {
    // OrderedDict state_dicts carry `_metadata` (module versions) as instance state;
    // tensors may carry a dict of Python attributes. Neither affects the weights.
    if (target->k == Node::K::kDict || target->k == Node::K::kTensor ||
        target->k == Node::K::kOpaque) {
      return;
    }
    NEPHRO_FAIL(what_, ": unsupported BUILD on a pickled object");
  }

  NodeP persistent_load(const NodeP& pid) {
    NEPHRO_CHECK(pid->k == Node::K::kTuple && pid->items.size() >= 5 &&
                     pid->items[0]->k == Node::K::kStr && pid->items[0]->s == "storage",
                 what_, ": unsupported persistent id (not a tensor storage)");
    const NodeP& type = pid->items[1];
    const NodeP& key = pid->items[2];
    const NodeP& numel = pid->items[4];
    NEPHRO_CHECK(type->k == Node::K::kStorageType, what_, ": unsupported storage type");
    NEPHRO_CHECK(key->k == Node::K::kStr && numel->k == Node::K::kInt, what_,
                 ": corrupt storage record");
    // The location (pid->items[3], e.g. "cuda:0") is ignored: everything loads to CPU.
    auto it = storages_.find(key->s);
    if (it == storages_.end()) {
      auto n = make(Node::K::kTensor);
      n->t = loader_(key->s, type->dtype, numel->i);
      it = storages_.emplace(key->s, n).first;
    }
    return it->second;
  }

  const unsigned char* p_;
  const unsigned char* end_;
  const StorageLoader& loader_;
  const std::string& what_;
  const unsigned char* start_ = p_;  // declared after p_: initialised from it
  std::vector<NodeP> stack_;
  std::unordered_map<uint64_t, NodeP> memo_;
  std::unordered_map<std::string, NodeP> storages_;
  uint64_t refs_left_;         // references containers may still store
  uint64_t values_left_;       // Values the conversion may still produce
  uint64_t value_bytes_left_;  // string bytes the conversion may still copy

 public:
  void check_fanout(uint64_t children) {
    NEPHRO_CHECK(children <= values_left_, what_,
                 ": pickle expands to too many objects (it references the same objects "
                 "over and over; limit ",
                 budget(kPickleValuesPerByte, static_cast<uint64_t>(end_ - start_),
                        kPickleValuesBase),
                 ")");
  }
  // Converts the internal tree to the public Value tree. Value is a plain value type,
  // so an object the pickle references n times (memo GET, DUP) is copied n times;
  // tensors share their storage. The copies are budgeted (kPickleValues*, counted as
  // they are made), so a pickle that references one object exponentially often (a
  // tuple of itself, twice, a hundred levels deep) is refused after at most the budget,
  // in milliseconds, instead of expanding.
  Value to_value(const NodeP& n, int depth = 0) {
    NEPHRO_CHECK(depth <= kMaxPickleDepth, what_, ": pickle nesting deeper than ",
                 kMaxPickleDepth, " levels");
    NEPHRO_CHECK(values_left_ > 0, what_,
                 ": pickle expands to too many objects (it references the same objects "
                 "over and over; limit ",
                 budget(kPickleValuesPerByte, static_cast<uint64_t>(end_ - start_),
                        kPickleValuesBase),
                 ")");
    --values_left_;
    Value v;
    switch (n->k) {
      case Node::K::kNone: v.kind = Value::Kind::kNone; break;
      case Node::K::kBool: v.kind = Value::Kind::kBool; v.b = n->b; break;
      case Node::K::kInt: v.kind = Value::Kind::kInt; v.i = n->i; break;
      case Node::K::kFloat: v.kind = Value::Kind::kFloat; v.f = n->f; break;
      case Node::K::kStr:
      case Node::K::kBytes:
        NEPHRO_CHECK(value_bytes_left_ >= n->s.size(), what_,
                     ": pickle expands to too many string bytes (it references the same "
                     "strings over and over)");
        value_bytes_left_ -= n->s.size();
        v.kind = Value::Kind::kString;
        v.s = n->s;
        break;
      case Node::K::kTensor: v.kind = Value::Kind::kTensor; v.tensor = n->t; break;
      case Node::K::kList:
      case Node::K::kTuple:
        v.kind = n->k == Node::K::kList ? Value::Kind::kList : Value::Kind::kTuple;
        check_fanout(n->items.size());
        v.items.reserve(n->items.size());
        for (const auto& it : n->items) v.items.push_back(to_value(it, depth + 1));
        break;
      case Node::K::kDict:
        v.kind = Value::Kind::kDict;
        check_fanout(2 * n->entries.size());
        v.entries.reserve(n->entries.size());
        for (const auto& [k, val] : n->entries) {
          v.entries.emplace_back(to_value(k, depth + 1), to_value(val, depth + 1));
        }
        break;
      default:
        v.kind = Value::Kind::kOpaque;
        v.s = n->s;
        break;
    }
    return v;
  }
};

}  // namespace

Value unpickle(const char* bytes, size_t size, const StorageLoader& load_storage,
               const std::string& what) {
  Machine m(bytes, size, load_storage, what);
  NodeP root = m.run();
  return m.to_value(root);
}

}  // namespace nephroseg::checkpoint::detail
