// The TIFF directory-chain check run before OpenSlide (see tiff_layout.h).
// Ref: TIFF 6.0 section 2 (header, IFD, field types); BigTIFF (version 43, 8-byte
// counts and offsets, 20-byte entries).
#include "slide/tiff_layout.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <unordered_set>

#include "nephroseg/core/error.h"

namespace nephroseg::slide {
namespace {

constexpr uint16_t kNdpiTag = 65420;
constexpr uint64_t k4GiB = uint64_t{1} << 32;

// Bytes per value of a TIFF field type; 0 for types OpenSlide refuses by itself.
uint64_t value_bytes(uint16_t type) {
  switch (type) {
    case 1: case 2: case 6: case 7: return 1;            // BYTE ASCII SBYTE UNDEFINED
    case 3: case 8: return 2;                            // SHORT SSHORT
    case 4: case 9: case 11: case 13: return 4;          // LONG SLONG FLOAT IFD
    case 5: case 10: case 12: case 16: case 17: case 18: return 8;  // (S)RATIONAL DOUBLE (S)LONG8 IFD8
    default: return 0;
  }
}

class Reader {
 public:
  Reader(const std::string& path, bool big_endian) : in_(path, std::ios::binary), big_endian_(big_endian) {}
  bool ok() const { return static_cast<bool>(in_); }
  void seek(uint64_t off) { in_.seekg(static_cast<std::streamoff>(off)); }
  // An unsigned integer of `bytes` (2, 4 or 8) in the file's byte order; false at EOF.
  bool read(int bytes, uint64_t* v) {
    unsigned char b[8];
    if (!in_.read(reinterpret_cast<char*>(b), bytes)) return false;
    *v = 0;
    for (int i = 0; i < bytes; ++i) *v |= uint64_t{b[big_endian_ ? i : bytes - 1 - i]} << (8 * (bytes - 1 - i));
    return true;
  }

 private:
  std::ifstream in_;
  bool big_endian_;
};

}  // namespace

void check_tiff_layout(const std::string& path) {
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (ec || size < 8) return;  // the readers say what is wrong with it
  char magic[2] = {0, 0};
  std::ifstream(path, std::ios::binary).read(magic, 2);
  const bool big_endian = magic[0] == 'M' && magic[1] == 'M';
  if (!big_endian && !(magic[0] == 'I' && magic[1] == 'I')) return;

  Reader r(path, big_endian);
  uint64_t version = 0, offset_bytes = 0, pad = 0, diroff = 0;
  r.seek(2);
  if (!r.read(2, &version)) return;
  const bool bigtiff = version == 43;
  if (bigtiff) {
    if (!r.read(2, &offset_bytes) || !r.read(2, &pad) || offset_bytes != 8 || pad != 0) return;
  } else if (version != 42) {
    return;  // not a TIFF: OpenSlide refuses it without parsing further
  }
  const int word = bigtiff ? 8 : 4;            // count, offset and value/offset field
  const int dircount_bytes = bigtiff ? 8 : 2;  // entries in a directory
  const uint64_t entry_bytes = bigtiff ? 20 : 12;
  const uint64_t header_bytes = bigtiff ? 16 : 8;
  if (!r.read(word, &diroff)) return;

  const std::string what = "slide '" + path + "': corrupt TIFF structure: ";
  std::unordered_set<uint64_t> seen;
  for (uint64_t dir = 0; diroff != 0; ++dir) {
    NEPHRO_CHECK(diroff >= header_bytes && diroff < size, what, "directory ", dir, " at offset ", diroff,
                 " lies outside the file (", size, " bytes; truncated?)");
    NEPHRO_CHECK(seen.insert(diroff).second, what, "directory ", dir, " at offset ", diroff,
                 " repeats an earlier one (the directory chain loops)");
    uint64_t entries = 0;
    r.seek(diroff);
    NEPHRO_CHECK(r.read(dircount_bytes, &entries), what, "directory ", dir, " is cut off (truncated file?)");
    const uint64_t room = size - diroff - dircount_bytes;
    NEPHRO_CHECK(room >= static_cast<uint64_t>(word) && entries <= (room - word) / entry_bytes, what, "directory ",
                 dir, " declares ", entries, " entries, more than the file holds (truncated file?)");
    bool ndpi = false;
    for (uint64_t e = 0; e < entries; ++e) {
      uint64_t tag = 0, type = 0, count = 0, field = 0;
      NEPHRO_CHECK(r.read(2, &tag) && r.read(2, &type) && r.read(word, &count) && r.read(word, &field), what,
                   "directory ", dir, " is cut off (truncated file?)");
      if (dir == 0 && !bigtiff && tag == kNdpiTag) ndpi = true;
      const uint64_t vb = value_bytes(static_cast<uint16_t>(type));
      if (vb == 0) continue;
      NEPHRO_CHECK(count <= size / vb, what, "directory ", dir, " tag ", tag, " declares ", count,
                   " values, more bytes than the whole file (", size, ")");
      const uint64_t len = count * vb;
      if (len <= static_cast<uint64_t>(word)) continue;  // held in the entry itself
      // (In an NDPI file of 4 GiB or more a 32-bit offset is a lower bound of the real
      // one; this check can then only pass.)
      NEPHRO_CHECK(field >= header_bytes && field <= size && len <= size - field, what, "directory ", dir, " tag ",
                   tag, " has its ", len, " bytes of values at offset ", field, ", outside the file (", size,
                   " bytes; truncated?)");
    }
    // Its next-directory offsets hold only their low 32 bits too: the chain is not
    // walked further. Values no larger than the file is what bounds OpenSlide's memory.
    if (ndpi && size >= k4GiB) return;
    NEPHRO_CHECK(r.read(word, &diroff), what, "directory ", dir, " is cut off (truncated file?)");
  }
}

}  // namespace nephroseg::slide
