// Ref: numpy/lib/format.py (the .npy header: magic, version, little-endian header
// length, a Python-literal dict with 'descr', 'fortran_order', 'shape').
#include "nephroseg/io/npy.h"

#include <ATen/Functions.h>

#include <cstring>
#include <cctype>
#include <fstream>
#include <sstream>
#include <vector>

#include "nephroseg/core/error.h"
#include "nephroseg/core/atomic_file.h"

namespace nephroseg::io {
namespace {

struct DtypeInfo {
  const char* descr;  // without byte-order character
  at::ScalarType type;
};

constexpr DtypeInfo kDtypes[] = {
    {"f4", at::kFloat}, {"f8", at::kDouble}, {"f2", at::kHalf}, {"i1", at::kChar},
    {"i2", at::kShort}, {"i4", at::kInt},    {"i8", at::kLong}, {"u1", at::kByte},
    {"b1", at::kBool},
};

// The raw text of `key`'s value in a .npy header, a Python dict literal such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }: a quoted string (quotes
// kept), a parenthesised tuple (parentheses kept) or a bare word; "" when the key is
// absent or its value is malformed. One linear scan: headers may be up to 1 MiB, and
// the regex matcher used before recursed per character on them (a stack overflow).
std::string header_value(const std::string& header, const std::string& key) {
  const std::string quoted = "'" + key + "'";
  const size_t at = header.find(quoted);
  if (at == std::string::npos) return "";
  size_t k = at + quoted.size();
  auto skip_space = [&] {
    while (k < header.size() && (header[k] == ' ' || header[k] == '\t')) ++k;
  };
  skip_space();
  if (k >= header.size() || header[k] != ':') return "";
  ++k;
  skip_space();
  if (k >= header.size()) return "";
  size_t end = std::string::npos;
  if (header[k] == '\'') {
    end = header.find('\'', k + 1);
  } else if (header[k] == '(') {
    end = header.find(')', k + 1);
  } else {
    end = k;
    while (end < header.size() && std::isalnum(static_cast<unsigned char>(header[end]))) ++end;
    return header.substr(k, end - k);
  }
  return end == std::string::npos ? "" : header.substr(k, end - k + 1);
}

}  // namespace

at::Tensor read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  NEPHRO_CHECK(in.good(), "cannot open .npy file '", path, "'");
  char magic[8] = {};
  in.read(magic, 8);
  NEPHRO_CHECK(in.gcount() == 8 && std::memcmp(magic, "\x93NUMPY", 6) == 0, "'", path,
               "' is not a .npy file (bad magic)");
  const int major = static_cast<unsigned char>(magic[6]);
  uint32_t header_len = 0;
  if (major == 1) {
    unsigned char b[2];
    in.read(reinterpret_cast<char*>(b), 2);
    header_len = b[0] | (b[1] << 8);
  } else if (major == 2 || major == 3) {
    unsigned char b[4];
    in.read(reinterpret_cast<char*>(b), 4);
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  } else {
    NEPHRO_FAIL("'", path, "': unsupported .npy version ", major);
  }
  NEPHRO_CHECK(in.good() && header_len < (1u << 20), "'", path, "': truncated .npy header");
  std::string header(header_len, '\0');
  in.read(header.data(), header_len);
  NEPHRO_CHECK(in.gcount() == static_cast<std::streamsize>(header_len), "'", path,
               "': truncated .npy header");

  const std::string descr_value = header_value(header, "descr");
  NEPHRO_CHECK(descr_value.size() >= 4 && descr_value.front() == '\'' && descr_value.back() == '\'', "'", path,
               "': .npy header has no descr");
  const char order = descr_value[1];
  NEPHRO_CHECK(order == '<' || order == '>' || order == '|' || order == '=', "'", path,
               "': .npy header has no descr");
  NEPHRO_CHECK(order != '>', "'", path, "': big-endian .npy is not supported");
  const std::string descr = descr_value.substr(2, descr_value.size() - 3);
  at::ScalarType type = at::kFloat;
  bool found = false;
  for (const auto& d : kDtypes) {
    if (descr == d.descr) {
      type = d.type;
      found = true;
    }
  }
  NEPHRO_CHECK(found, "'", path, "': unsupported .npy dtype '", descr.substr(0, 32), "'");
  const std::string fortran = header_value(header, "fortran_order");
  NEPHRO_CHECK(fortran == "True" || fortran == "False", "'", path, "': .npy header has no fortran_order");
  NEPHRO_CHECK(fortran == "False", "'", path, "': Fortran-ordered .npy is not supported");
  const std::string shape_value = header_value(header, "shape");
  NEPHRO_CHECK(shape_value.size() >= 2 && shape_value.front() == '(' && shape_value.back() == ')', "'", path,
               "': .npy header has no shape");
  std::vector<int64_t> shape;
  {
    const std::string dims = shape_value.substr(1, shape_value.size() - 2);
    std::stringstream ss(dims);
    std::string item;
    while (std::getline(ss, item, ',')) {
      item.erase(0, item.find_first_not_of(" \t"));
      item.erase(item.find_last_not_of(" \tL") + 1);
      if (item.empty()) continue;
      NEPHRO_CHECK(item.size() <= 18 && item.find_first_not_of("0123456789") == std::string::npos, "'", path,
                   "': .npy shape entry '", item, "' is not a dimension");
      shape.push_back(std::stoll(item));
    }
  }
  NEPHRO_CHECK(shape.size() <= 16, "'", path, "': .npy has ", shape.size(), " dimensions (at most 16)");
  // The declared size must fit the bytes the file holds before anything is allocated.
  const std::streamoff data_start = in.tellg();
  in.seekg(0, std::ios::end);
  const std::streamoff file_end = in.tellg();
  in.seekg(data_start);
  NEPHRO_CHECK(data_start >= 0 && file_end >= data_start, "'", path, "': cannot read .npy data");
  uint64_t nbytes_u = static_cast<uint64_t>(at::elementSize(type));
  for (int64_t d : shape)
    NEPHRO_CHECK(!__builtin_mul_overflow(nbytes_u, static_cast<uint64_t>(d), &nbytes_u), "'", path,
                 "': .npy shape overflows");
  NEPHRO_CHECK(nbytes_u <= static_cast<uint64_t>(file_end - data_start), "'", path, "': .npy data truncated (the header declares ",
               nbytes_u, " bytes, the file holds ", file_end - data_start, ")");
  at::Tensor out = at::empty(shape, at::TensorOptions().dtype(type));
  const auto nbytes = static_cast<std::streamsize>(out.numel() * out.element_size());
  in.read(static_cast<char*>(out.data_ptr()), nbytes);
  NEPHRO_CHECK(in.gcount() == nbytes, "'", path, "': .npy data truncated (expected ", nbytes,
               " bytes)");
  return out;
}

void write_npy(const std::string& path, const at::Tensor& tensor) {
  NEPHRO_CHECK(tensor.defined(), "write_npy('", path, "'): undefined tensor");
  at::Tensor t = tensor.detach().cpu().contiguous();
  const char* descr = nullptr;
  for (const auto& d : kDtypes) {
    if (d.type == t.scalar_type()) descr = d.descr;
  }
  NEPHRO_CHECK(descr != nullptr, "write_npy('", path, "'): unsupported dtype ", t.scalar_type());
  std::ostringstream shape;
  shape << "(";
  for (int64_t i = 0; i < t.dim(); ++i) {
    shape << t.size(i) << (t.dim() == 1 ? "," : (i + 1 < t.dim() ? ", " : ""));
  }
  shape << ")";
  const char order = (std::string(descr) == "u1" || std::string(descr) == "i1" ||
                      std::string(descr) == "b1")
                         ? '|'
                         : '<';
  std::string header = std::string("{'descr': '") + order + descr +
                       "', 'fortran_order': False, 'shape': " + shape.str() + ", }";
  // Pad with spaces so that magic(6)+version(2)+len(2)+header is a multiple of 64.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes.push_back(static_cast<char>(header.size() & 0xff));
  bytes.push_back(static_cast<char>((header.size() >> 8) & 0xff));
  bytes += header;
  bytes.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  write_file_atomically(path, bytes);
}

}  // namespace nephroseg::io
