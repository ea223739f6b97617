// De-duplication of point lists and their order (spec §8 and Appendix A).
//
// The authors de-duplicate with `list(set(tuple(p) for p in points))`, so the order the
// order-dependent sampling sees is CPython's hash-table order. kCPythonSet rebuilds that
// table exactly (tuple hash of CPython >= 3.8, set probing and resizing of setobject.c,
// 64-bit build); kRaster is the project's deterministic alternative.
#include <algorithm>
#include <cstdlib>
#include <optional>

#include "nephroseg/core/error.h"
#include "nephroseg/gbmseg/prompts.h"

namespace nephroseg::gbmseg {

namespace {

constexpr uint64_t kHashModulus = (uint64_t{1} << 61) - 1;  // _PyHASH_MODULUS
constexpr uint64_t kXxPrime1 = 11400714785074694791ULL;
constexpr uint64_t kXxPrime2 = 14029467366897019727ULL;
constexpr uint64_t kXxPrime5 = 2870177450012600261ULL;

// hash(v) of an integral int / float: sign(v) * (|v| mod (2^61 - 1)), -1 -> -2.
int64_t cpython_number_hash(int64_t v) {
  const uint64_t magnitude = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  int64_t h = static_cast<int64_t>(magnitude % kHashModulus);
  if (v < 0) h = -h;
  return h == -1 ? -2 : h;
}

uint64_t rotate_left_31(uint64_t x) { return (x << 31) | (x >> 33); }

// One open-addressing table of setobject.c (LINEAR_PROBES = 9, PERTURB_SHIFT = 5).
class SetTable {
 public:
  void add(const Point& p) {
    const uint64_t hash = cpython_point_hash(p.x, p.y);
    if (!probe(slots_, hash, &p)) return;  // already present
    ++used_;
    const size_t mask = slots_.size() - 1;
    if (used_ * 5 >= mask * 3) grow();
  }

  Points in_slot_order() const {
    Points out;
    out.reserve(used_);
    for (const auto& s : slots_) {
      if (s) out.push_back(s->point);
    }
    return out;
  }

 private:
  struct Entry {
    uint64_t hash;
    Point point;
  };
  using Table = std::vector<std::optional<Entry>>;

  // Inserts unless an equal key is found; returns true when inserted. `key` == nullptr
  // means "insert clean" (resize: no equality test needed).
  static bool probe(Table& table, uint64_t hash, const Point* key, const Point* value = nullptr) {
    const size_t mask = table.size() - 1;
    size_t i = static_cast<size_t>(hash) & mask;
    uint64_t perturb = hash;
    const Point& item = key ? *key : *value;
    while (true) {
      const size_t probes = (i + 9 <= mask) ? 9 : 0;
      for (size_t j = 0; j <= probes; ++j) {
        auto& slot = table[i + j];
        if (!slot) {
          slot = Entry{hash, item};
          return true;
        }
        if (key && slot->hash == hash && slot->point == *key) return false;
      }
      perturb >>= 5;
      i = (i * 5 + 1 + static_cast<size_t>(perturb)) & mask;
    }
  }

  void grow() {
    const size_t min_used = used_ > 50000 ? used_ * 2 : used_ * 4;
    size_t new_size = 8;
    while (new_size <= min_used) new_size <<= 1;
    Table fresh(new_size);
    for (const auto& s : slots_) {
      if (s) probe(fresh, s->hash, nullptr, &s->point);
    }
    slots_.swap(fresh);
  }

  Table slots_ = Table(8);  // PySet_MINSIZE
  size_t used_ = 0;
};

}  // namespace

// Ref: CPython Objects/tupleobject.c::tuplehash (xxHash-based, 3.8+)
uint64_t cpython_point_hash(int64_t x, int64_t y) {
  uint64_t acc = kXxPrime5;
  for (int64_t v : {x, y}) {
    const uint64_t lane = static_cast<uint64_t>(cpython_number_hash(v));
    acc += lane * kXxPrime2;
    acc = rotate_left_31(acc);
    acc *= kXxPrime1;
  }
  acc += uint64_t{2} ^ (kXxPrime5 ^ 3527539ULL);
  if (acc == ~uint64_t{0}) return 1546275796ULL;
  return acc;
}

Points deduplicate_points(const Points& points, PointOrder order) {
  if (order == PointOrder::kCPythonSet) {
    SetTable table;
    for (const Point& p : points) table.add(p);
    return table.in_slot_order();
  }
  Points out = points;
  std::sort(out.begin(), out.end(), [](const Point& a, const Point& b) {
    return a.y != b.y ? a.y < b.y : a.x < b.x;
  });
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace nephroseg::gbmseg
