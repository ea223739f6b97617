#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "nephroseg/core/error.h"
#include "nephroseg/io/npy.h"
#include "support/golden.h"

using namespace nephroseg;

TEST(Npy, RoundTripsEveryDtype) {
  const std::string dir = test::temp_dir("npy");
  for (auto type : {at::kFloat, at::kDouble, at::kInt, at::kLong, at::kByte, at::kBool}) {
    at::Tensor t = (at::rand({3, 5, 2}) * 100).to(type);
    const std::string path = dir + "/t.npy";
    io::write_npy(path, t);
    at::Tensor back = io::read_npy(path);
    EXPECT_EQ(back.scalar_type(), type);
    EXPECT_TRUE(back.equal(t)) << "dtype " << type;
  }
  io::write_npy(dir + "/v.npy", at::arange(7));  // 1-d shape "(7,)"
  EXPECT_EQ(io::read_npy(dir + "/v.npy").sizes(), at::IntArrayRef({7}));
}

TEST(Npy, ReadsGoldenFile) {
  NEPHRO_REQUIRE_SHARED("golden/gbmseg/case01_realmask_g40_d16/feat_ref.npy");
  at::Tensor f = io::read_npy(test::shared_path("golden/gbmseg/case01_realmask_g40_d16/feat_ref.npy"));
  EXPECT_EQ(f.scalar_type(), at::kFloat);
  EXPECT_EQ(f.dim(), 2);
  EXPECT_EQ(f.size(0), 1600);
}

TEST(Npy, RejectsBadFilesByName) {
  const std::string dir = test::temp_dir("npy_bad");
  { std::ofstream(dir + "/bad.npy") << "not numpy"; }
  EXPECT_THROW(io::read_npy(dir + "/bad.npy"), Error);
  EXPECT_THROW(io::read_npy(dir + "/missing.npy"), Error);
  try {
    io::read_npy(dir + "/bad.npy");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.npy"), std::string::npos);
  }
}

// Found by fuzz/fuzz_npy: a shape entry that is not a number escaped as std::stoll's
// exception; a huge declared shape was allocated before the data was checked.
TEST(Npy, HostileHeadersAreClearErrorsWithoutAllocating) {
  const std::string dir = test::temp_dir("npy_hostile");
  auto write = [&](const std::string& name, const std::string& header, size_t data_bytes) {
    std::string h = header;
    while ((10 + h.size() + 1) % 64) h += ' ';
    h += '\n';
    std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
    bytes += static_cast<char>(h.size() & 0xff);
    bytes += static_cast<char>(h.size() >> 8);
    bytes += h + std::string(data_bytes, '\0');
    std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
    return dir + "/" + name;
  };
  auto read_error = [](const std::string& path) { return test::error_of([&] { io::read_npy(path); }); };
  const std::string bad = write("bad.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (0,\xfd 2), }", 0);
  EXPECT_NE(read_error(bad).find("is not a dimension"), std::string::npos) << read_error(bad);
  const std::string huge =
      write("huge.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 100000), }", 16);
  EXPECT_NE(read_error(huge).find("the header declares"), std::string::npos) << read_error(huge);
  const std::string over =
      write("over.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (999999999999999999, 999999999999), }", 16);
  EXPECT_NE(read_error(over).find("overflows"), std::string::npos) << read_error(over);
  const std::string ok = write("ok.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 16);
  EXPECT_EQ(io::read_npy(ok).numel(), 4);
}

namespace {

// A version-2 .npy file whose header dict is `dict` padded to `header_bytes`.
void write_v2_npy(const std::string& path, const std::string& dict, size_t header_bytes, const std::string& data) {
  std::string header = dict;
  header.resize(header_bytes - 1, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x02\x00", 8);
  const uint32_t n = static_cast<uint32_t>(header.size());
  const unsigned char len[4] = {static_cast<unsigned char>(n), static_cast<unsigned char>(n >> 8),
                                static_cast<unsigned char>(n >> 16), static_cast<unsigned char>(n >> 24)};
  out.write(reinterpret_cast<const char*>(len), 4);
  out << header << data;
}

}  // namespace

// std::regex recursed per character and overflowed the stack on large v2 headers; the
// header is now scanned once. Large but valid headers read; large junk is refused.
TEST(Npy, LargeVersion2HeadersReadOrFailCleanly) {
  const std::string dir = test::temp_dir("npy_large");
  const std::string floats(2 * 3 * sizeof(float), '\0');
  write_v2_npy(dir + "/padded.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 900000, floats);
  EXPECT_EQ(io::read_npy(dir + "/padded.npy").sizes(), at::IntArrayRef({2, 3}));

  const std::string long_descr = "{'descr': '<" + std::string(600000, 'f') + "', 'fortran_order': False, 'shape': (2, 3), }";
  write_v2_npy(dir + "/descr.npy", long_descr, 700000, floats);
  try {
    io::read_npy(dir + "/descr.npy");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unsupported .npy dtype"), std::string::npos) << e.what();
  }
  const std::string open_shape = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::string(600000, '7');
  write_v2_npy(dir + "/shape.npy", open_shape, 700000, floats);
  try {
    io::read_npy(dir + "/shape.npy");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has no shape"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}
