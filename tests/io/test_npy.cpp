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
