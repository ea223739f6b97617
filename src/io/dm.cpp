#include "nephroseg/io/dm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <vector>

#include "nephroseg/core/error.h"
#include "nephroseg/io/image.h"

namespace nephroseg::io {

namespace {

constexpr int kMaxDepth = 64;

// Simple (scalar) tag data types and their byte sizes; 0 = not a simple type.
enum : uint64_t {
  kShort = 2, kLong = 3, kUShort = 4, kULong = 5, kFloat = 6, kDouble = 7, kBool = 8, kChar = 9,
  kOctet = 10, kLongLong = 11, kULongLong = 12, kStruct = 15, kString = 18, kArray = 20
};

uint64_t simple_size(uint64_t type) {
  switch (type) {
    case kShort: case kUShort: return 2;
    case kLong: case kULong: case kFloat: return 4;
    case kDouble: case kLongLong: case kULongLong: return 8;
    case kBool: case kChar: case kOctet: return 1;
    default: return 0;
  }
}

struct Tag {
  std::string label;
  bool group = false;
  std::vector<Tag> children;   // group
  std::vector<uint64_t> info;  // data: type description
  uint64_t offset = 0, size = 0;  // data: bytes in the file

  const Tag* child(const std::string& name) const {
    for (const auto& c : children)
      if (c.label == name) return &c;
    return nullptr;
  }
  const Tag* path(std::initializer_list<const char*> names) const {
    const Tag* t = this;
    for (const char* n : names) {
      if (!t || !t->group) return nullptr;
      t = t->child(n);
    }
    return t;
  }
};

uint64_t mul_checked(uint64_t a, uint64_t b, bool& ok) {
  uint64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) ok = false;
  return r;
}
uint64_t add_checked(uint64_t a, uint64_t b, bool& ok) {
  uint64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) ok = false;
  return r;
}

class Parser {
 public:
  Parser(const std::string& bytes, const std::string& name) : b_(bytes), name_(name) {}

  Tag parse(int& version, bool& little) {
    NEPHRO_CHECK(looks_like_dm(b_), "'", name_, "' is not a DigitalMicrograph file (no DM3/DM4 header)");
    version = static_cast<int>(be(4));
    wide_ = version == 4;
    (void)be(wide_ ? 8 : 4);  // root length (not needed: the tags describe themselves)
    const uint64_t order = be(4);
    NEPHRO_CHECK(order == 0 || order == 1, "DM file '", name_, "': byte-order flag ", order, " (expected 0 or 1)");
    little_ = order == 1;
    little = little_;
    Tag root;
    root.group = true;
    read_group(root, 0);
    return root;
  }

  bool little() const { return little_; }

  // A number from a simple-typed data tag.
  double number(const Tag& t) const {
    NEPHRO_CHECK(!t.group && t.info.size() == 1 && simple_size(t.info[0]) > 0, "DM file '", name_, "': tag '",
                 t.label, "' is not a number");
    return value_at(t.info[0], t.offset);
  }

  // Text from a string tag or an array of 1- or 2-byte characters (UTF-16 -> UTF-8).
  std::string text(const Tag& t) const {
    uint64_t unit = 0, count = 0;
    if (!t.group && t.info.size() == 2 && t.info[0] == kString) {
      unit = 2;
      count = t.info[1];
    } else if (!t.group && t.info.size() == 3 && t.info[0] == kArray &&
               (t.info[1] == kUShort || t.info[1] == kShort || t.info[1] == kOctet || t.info[1] == kChar)) {
      unit = simple_size(t.info[1]);
      count = t.info[2];
    } else {
      return {};
    }
    std::string out;
    for (uint64_t i = 0; i < count; ++i) {
      const uint32_t c = static_cast<uint32_t>(data_uint(t.offset + i * unit, unit));
      if (c == 0) break;
      if (c < 0x80) {
        out += static_cast<char>(c);
      } else if (c < 0x800) {
        out += static_cast<char>(0xC0 | (c >> 6));
        out += static_cast<char>(0x80 | (c & 0x3F));
      } else {
        out += static_cast<char>(0xE0 | (c >> 12));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
      }
    }
    return out;
  }

  uint64_t data_uint(uint64_t pos, uint64_t n) const {
    uint64_t v = 0;
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t byte = static_cast<uint8_t>(b_[pos + (little_ ? n - 1 - i : i)]);
      v = (v << 8) | byte;
    }
    return v;
  }

  double value_at(uint64_t type, uint64_t pos) const {
    const uint64_t n = simple_size(type);
    const uint64_t u = data_uint(pos, n);
    switch (type) {
      case kShort: return static_cast<int16_t>(u);
      case kLong: return static_cast<int32_t>(u);
      case kChar: return static_cast<int8_t>(u);
      case kLongLong: return static_cast<double>(static_cast<int64_t>(u));
      case kFloat: {
        const uint32_t w = static_cast<uint32_t>(u);
        float f;
        std::memcpy(&f, &w, 4);
        return f;
      }
      case kDouble: {
        double d;
        std::memcpy(&d, &u, 8);
        return d;
      }
      default: return static_cast<double>(u);
    }
  }

 private:
  [[noreturn]] void truncated(const char* what) const {
    NEPHRO_FAIL("DM file '", name_, "' is truncated or corrupt: ", what, " at byte ", pos_, " runs past the end (",
                b_.size(), " bytes)");
  }

  void need(uint64_t n, const char* what) const {
    if (n > b_.size() || pos_ > b_.size() - n) truncated(what);
  }

  uint64_t be(int n) {
    need(static_cast<uint64_t>(n), "a header field");
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<uint8_t>(b_[pos_ + i]);
    pos_ += n;
    return v;
  }
  uint64_t count() { return be(wide_ ? 8 : 4); }

  void read_group(Tag& g, int depth) {
    NEPHRO_CHECK(depth < kMaxDepth, "DM file '", name_, "': tag groups nested deeper than ", kMaxDepth, " levels");
    (void)be(1);  // sorted
    (void)be(1);  // open
    const uint64_t n = count();
    // Every tag takes at least 3 bytes: a count beyond that cannot be real.
    NEPHRO_CHECK(n <= (b_.size() - std::min<uint64_t>(pos_, b_.size())) / 3, "DM file '", name_, "': tag group at byte ",
                 pos_, " declares ", n, " tags, more than the file can hold");
    for (uint64_t i = 0; i < n; ++i) {
      Tag t;
      const uint64_t kind = be(1);
      if (kind == 0) break;  // end marker some writers leave in place of the last tag
      NEPHRO_CHECK(kind == 20 || kind == 21, "DM file '", name_, "': unknown tag kind ", kind, " at byte ", pos_ - 1);
      const uint64_t len = be(2);
      need(len, "a tag label");
      t.label.assign(b_, pos_, len);
      pos_ += len;
      if (wide_) (void)be(8);  // the tag's byte length (DM4)
      if (kind == 20) {
        t.group = true;
        read_group(t, depth + 1);
      } else {
        read_data(t);
      }
      g.children.push_back(std::move(t));
    }
  }

  void read_data(Tag& t) {
    need(4, "a data tag marker");
    NEPHRO_CHECK(b_.compare(pos_, 4, "%%%%") == 0, "DM file '", name_, "': data tag '", t.label, "' at byte ", pos_,
                 " lacks its '%%%%' marker (corrupt file)");
    pos_ += 4;
    const uint64_t ninfo = count();
    NEPHRO_CHECK(ninfo >= 1 && ninfo <= 4096, "DM file '", name_, "': data tag '", t.label, "' has ", ninfo,
                 " type descriptors (corrupt file)");
    for (uint64_t i = 0; i < ninfo; ++i) t.info.push_back(count());
    bool ok = true;
    const uint64_t size = data_size(t, ok);
    NEPHRO_CHECK(ok, "DM file '", name_, "': data tag '", t.label, "' declares a size that overflows (corrupt file)");
    t.offset = pos_;
    t.size = size;
    need(size, "tag data");
    pos_ += size;
  }

  uint64_t struct_size(const std::vector<uint64_t>& info, size_t first_field, uint64_t nfields, bool& ok) const {
    // Fields are (name length, type) pairs starting at info[first_field].
    uint64_t total = 0;
    for (uint64_t f = 0; f < nfields; ++f) {
      const uint64_t s = simple_size(info[first_field + 2 * f + 1]);
      if (s == 0) ok = false;
      total = add_checked(total, s, ok);
    }
    return total;
  }

  uint64_t data_size(const Tag& t, bool& ok) const {
    const auto& in = t.info;
    const auto bad = [&] { NEPHRO_FAIL("DM file '", name_, "': data tag '", t.label, "' has an unsupported type description (", in[0], ")"); };
    if (in.size() == 1) {
      if (simple_size(in[0]) == 0) bad();
      return simple_size(in[0]);
    }
    if (in[0] == kString) {
      if (in.size() != 2) bad();
      return mul_checked(in[1], 2, ok);
    }
    if (in[0] == kStruct) {
      if (in.size() < 3 || in.size() != 3 + 2 * in[2]) bad();
      const uint64_t s = struct_size(in, 3, in[2], ok);
      if (!ok) bad();
      return s;
    }
    if (in[0] == kArray) {
      if (in.size() == 3 && simple_size(in[1]) > 0) return mul_checked(in[2], simple_size(in[1]), ok);
      if (in.size() >= 5 && in[1] == kStruct && in[3] <= (in.size() - 5) / 2 && in.size() == 5 + 2 * in[3]) {
        const uint64_t s = struct_size(in, 4, in[3], ok);
        if (!ok) bad();
        return mul_checked(s, in.back(), ok);
      }
    }
    bad();
    return 0;
  }

  const std::string& b_;
  const std::string& name_;
  uint64_t pos_ = 0;
  bool wide_ = false, little_ = true;
};

struct TypeInfo {
  DmDataType type;
  int bytes;
};

TypeInfo image_type(int code, const std::string& name) {
  switch (code) {
    case 1: return {DmDataType::kInt16, 2};
    case 2: return {DmDataType::kFloat32, 4};
    case 6: return {DmDataType::kUint8, 1};
    case 7: return {DmDataType::kInt32, 4};
    case 8: case 23: return {DmDataType::kRgba8, 4};
    case 9: return {DmDataType::kInt8, 1};
    case 10: return {DmDataType::kUint16, 2};
    case 11: return {DmDataType::kUint32, 4};
    case 12: return {DmDataType::kFloat64, 8};
    case 3: case 5: case 13:
      NEPHRO_FAIL("DM file '", name, "' holds a complex image (data type ", code,
                  "): not supported (export the amplitude or phase as a real image)");
    case 14: NEPHRO_FAIL("DM file '", name, "' holds a bool (binary) image (data type 14): not supported");
    default: NEPHRO_FAIL("DM file '", name, "' has an unknown image data type ", code);
  }
}

}  // namespace

const std::string& dm_data_type_name(DmDataType type) {
  static const std::string names[] = {"int8", "int16", "int32", "uint8", "uint16", "uint32", "float32", "float64", "rgba8"};
  return names[static_cast<int>(type)];
}

bool looks_like_dm(const std::string& bytes) {
  if (bytes.size() < 16) return false;
  return bytes[0] == 0 && bytes[1] == 0 && bytes[2] == 0 && (bytes[3] == 3 || bytes[3] == 4);
}

DmImage read_dm_bytes(const std::string& bytes, const std::string& name) {
  Parser parser(bytes, name);
  DmImage out;
  bool little = true;
  const Tag root = parser.parse(out.version, little);

  const Tag* list = root.child("ImageList");
  NEPHRO_CHECK(list && list->group && !list->children.empty(), "DM file '", name, "' has no ImageList (no image)");
  std::set<uint64_t> thumbnails;
  if (const Tag* th = root.child("Thumbnails"); th && th->group)
    for (const auto& t : th->children)
      if (const Tag* idx = t.path({"ImageIndex"}); idx && !idx->group) {
        const double v = parser.number(*idx);
        if (v >= 0 && v < 1e9) thumbnails.insert(static_cast<uint64_t>(v));
      }

  // Candidates: images with data, not thumbnails; fall back to all images with data.
  auto has_data = [](const Tag& im) {
    const Tag* d = im.path({"ImageData", "Data"});
    const Tag* dims = im.path({"ImageData", "Dimensions"});
    return d && !d->group && dims && dims->group;
  };
  auto pixel_count = [&](const Tag& im) {
    double n = 1;
    for (const auto& d : im.path({"ImageData", "Dimensions"})->children) n *= d.group ? 0 : parser.number(d);
    return n;
  };
  int chosen = -1;
  double best = -1;
  for (int pass = 0; pass < 2 && chosen < 0; ++pass)
    for (size_t i = 0; i < list->children.size(); ++i) {
      const Tag& im = list->children[i];
      if (!im.group || !has_data(im) || (pass == 0 && thumbnails.count(i))) continue;
      const double n = pixel_count(im);
      if (n >= best) {
        best = n;
        chosen = static_cast<int>(i);
      }
    }
  NEPHRO_CHECK(chosen >= 0, "DM file '", name, "' has no image data (ImageList.N.ImageData.Data)");
  const Tag& im = list->children[chosen];
  out.image_index = chosen;
  const Tag& data = *im.path({"ImageData", "Data"});
  const Tag* dtype_tag = im.path({"ImageData", "DataType"});
  NEPHRO_CHECK(dtype_tag && !dtype_tag->group, "DM file '", name, "' has no ImageData.DataType");
  // Checked before the cast: a float out of int's range is undefined behaviour (found by
  // fuzz_dm: a DataType of 4.1e9).
  const double code = parser.number(*dtype_tag);
  NEPHRO_CHECK(code >= 0 && code <= 1024 && code == std::floor(code), "DM file '", name, "': ImageData.DataType ",
               code, " is not a DigitalMicrograph data type code");
  out.dm_type_code = static_cast<int>(code);
  const TypeInfo ti = image_type(out.dm_type_code, name);
  out.data_type = ti.type;

  const auto& dims = im.path({"ImageData", "Dimensions"})->children;
  NEPHRO_CHECK(dims.size() >= 1, "DM file '", name, "' has no image dimensions");
  std::vector<double> d;
  for (const auto& t : dims) d.push_back(parser.number(t));
  NEPHRO_CHECK(dims.size() != 1, "DM file '", name, "' holds a 1-D signal (", d[0], " values), not an image");
  NEPHRO_CHECK(dims.size() == 2, "DM file '", name, "' holds a ", dims.size(), "-D stack (", d[0], " x ", d[1], " x ",
               d[2], (dims.size() > 3 ? " x ..." : ""), "): only 2-D images are supported (export one plane)");
  NEPHRO_CHECK(d[0] >= 1 && d[1] >= 1, "DM file '", name, "' has an image of ", d[0], " x ", d[1], " pixels");
  NEPHRO_CHECK(d[0] <= kMaxImageSide && d[1] <= kMaxImageSide && d[0] * d[1] <= static_cast<double>(kMaxImagePixels),
               "DM file '", name, "' declares a ", d[0], " x ", d[1], " image, beyond the limit of ", kMaxImageSide,
               " pixels per side and ", kMaxImagePixels, " pixels in all");
  out.width = static_cast<int>(d[0]);
  out.height = static_cast<int>(d[1]);
  const uint64_t pixels = static_cast<uint64_t>(out.width) * static_cast<uint64_t>(out.height);
  const uint64_t needed = pixels * static_cast<uint64_t>(ti.bytes);
  NEPHRO_CHECK(data.size == needed, "DM file '", name, "': ImageData.Data holds ", data.size, " bytes but a ",
               out.width, " x ", out.height, " ", dm_data_type_name(ti.type), " image needs ", needed);

  // Decode row-major samples (x fastest) in the file's byte order.
  const int w = out.width, h = out.height;
  const uint64_t base = data.offset;
  auto at = [&](uint64_t i) { return base + i * static_cast<uint64_t>(ti.bytes); };
  switch (ti.type) {
    case DmDataType::kRgba8: {
      out.pixels.create(h, w, CV_8UC4);
      for (uint64_t i = 0; i < pixels; ++i) {
        const uint8_t* s = reinterpret_cast<const uint8_t*>(bytes.data() + at(i));
        uint8_t* p = out.pixels.data + i * 4;
        // Stored B, G, R, A (a little-endian 0xAARRGGBB word).
        p[0] = s[2];
        p[1] = s[1];
        p[2] = s[0];
        p[3] = s[3];
      }
      break;
    }
    case DmDataType::kUint8:
    case DmDataType::kInt8:
      out.pixels.create(h, w, ti.type == DmDataType::kUint8 ? CV_8U : CV_8S);
      std::memcpy(out.pixels.data, bytes.data() + base, pixels);
      break;
    case DmDataType::kInt16:
    case DmDataType::kUint16: {
      out.pixels.create(h, w, ti.type == DmDataType::kUint16 ? CV_16U : CV_16S);
      auto* p = reinterpret_cast<uint16_t*>(out.pixels.data);
      for (uint64_t i = 0; i < pixels; ++i) p[i] = static_cast<uint16_t>(parser.data_uint(at(i), 2));
      break;
    }
    case DmDataType::kInt32:
    case DmDataType::kFloat32: {
      out.pixels.create(h, w, ti.type == DmDataType::kInt32 ? CV_32S : CV_32F);
      auto* p = reinterpret_cast<uint32_t*>(out.pixels.data);
      for (uint64_t i = 0; i < pixels; ++i) p[i] = static_cast<uint32_t>(parser.data_uint(at(i), 4));
      break;
    }
    case DmDataType::kUint32: {
      out.pixels.create(h, w, CV_64F);
      auto* p = reinterpret_cast<double*>(out.pixels.data);
      for (uint64_t i = 0; i < pixels; ++i) p[i] = static_cast<double>(parser.data_uint(at(i), 4));
      break;
    }
    case DmDataType::kFloat64: {
      out.pixels.create(h, w, CV_64F);
      auto* p = reinterpret_cast<uint64_t*>(out.pixels.data);
      for (uint64_t i = 0; i < pixels; ++i) p[i] = parser.data_uint(at(i), 8);
      break;
    }
  }

  // Spatial calibration of x (dimension 0) and y (dimension 1).
  if (const Tag* cal = im.path({"ImageData", "Calibrations", "Dimension"}); cal && cal->group) {
    DmAxis* axes[2] = {&out.x, &out.y};
    for (size_t k = 0; k < 2 && k < cal->children.size(); ++k) {
      const Tag& a = cal->children[k];
      if (!a.group) continue;
      if (const Tag* s = a.child("Scale"); s && !s->group) axes[k]->scale = parser.number(*s);
      if (const Tag* o = a.child("Origin"); o && !o->group) axes[k]->origin = parser.number(*o);
      if (const Tag* u = a.child("Units"); u && !u->group) axes[k]->units = parser.text(*u);
    }
  }
  for (const char* key : {"Indicated Magnification", "Actual Magnification"}) {
    const Tag* m = im.path({"ImageTags", "Microscope Info", key});
    if (m && !m->group && m->info.size() == 1 && simple_size(m->info[0]) > 0) {
      out.magnification = parser.number(*m);
      if (out.magnification > 0) break;
    }
  }
  return out;
}

DmImage read_dm(const std::string& path) {
  std::error_code ec;
  NEPHRO_CHECK(std::filesystem::is_regular_file(path, ec), "DM file '", path, "' does not exist");
  std::ifstream in(path, std::ios::binary);
  NEPHRO_CHECK(in.good(), "cannot open DM file '", path, "'");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return read_dm_bytes(bytes, path);
}

}  // namespace nephroseg::io
