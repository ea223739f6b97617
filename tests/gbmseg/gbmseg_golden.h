// tests/gbmseg/gbmseg_golden.h: loading the GBMSeg golden arrays as library types and
// comparing them with messages that name the array and the first difference.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <opencv2/core.hpp>

#include <cstring>
#include <ostream>
#include <string>
#include <vector>

#include "nephroseg/gbmseg/prompts.h"
#include "nephroseg/io/npy.h"
#include "support/golden.h"

namespace nephroseg::gbmseg {
inline void PrintTo(const Point& p, std::ostream* os) { *os << "(" << p.x << ", " << p.y << ")"; }
}  // namespace nephroseg::gbmseg

namespace nephroseg::gbmseg::golden {

inline std::string golden_rel(const std::string& case_name, const std::string& file) {
  return "golden/gbmseg/" + case_name + "/" + file;
}
inline std::string golden_file(const std::string& case_name, const std::string& file) {
  return ::nephroseg::test::shared_path(golden_rel(case_name, file));
}

inline at::Tensor load(const std::string& case_name, const std::string& file) {
  const std::string path = golden_file(case_name, file);
  if (path.empty()) ADD_FAILURE() << "missing golden file " << golden_rel(case_name, file);
  return path.empty() ? at::Tensor() : io::read_npy(path);
}

inline Points load_points(const std::string& case_name, const std::string& file) {
  at::Tensor t = load(case_name, file);
  Points out;
  if (!t.defined()) return out;
  EXPECT_EQ(t.scalar_type(), at::kInt) << file;
  EXPECT_TRUE(t.dim() == 2 && t.size(1) == 2) << file << " shape " << t.sizes();
  t = t.to(at::kLong).contiguous();
  const int64_t* d = t.data_ptr<int64_t>();
  for (int64_t i = 0; i < t.size(0); ++i) {
    out.push_back(Point{static_cast<int32_t>(d[2 * i]), static_cast<int32_t>(d[2 * i + 1])});
  }
  return out;
}

inline PatchIndices load_indices(const std::string& case_name, const std::string& file) {
  at::Tensor t = load(case_name, file);
  if (!t.defined()) return {};
  EXPECT_EQ(t.scalar_type(), at::kLong) << file;
  EXPECT_EQ(t.dim(), 1) << file;
  t = t.contiguous();
  return PatchIndices(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
}

inline cv::Mat load_mask(const std::string& case_name, const std::string& file) {
  at::Tensor t = load(case_name, file);
  if (!t.defined()) return {};
  EXPECT_EQ(t.scalar_type(), at::kByte) << file;
  EXPECT_EQ(t.dim(), 2) << file;
  t = t.contiguous();
  cv::Mat m(static_cast<int>(t.size(0)), static_cast<int>(t.size(1)), CV_8UC1);
  std::memcpy(m.data, t.data_ptr<uint8_t>(), static_cast<size_t>(t.numel()));
  return m;
}

template <typename T>
::testing::AssertionResult same_list(const std::vector<T>& actual, const std::vector<T>& expected,
                                     const std::string& name) {
  if (actual.size() != expected.size()) {
    return ::testing::AssertionFailure() << name << ": " << actual.size() << " entries, golden has "
                                         << expected.size();
  }
  for (size_t i = 0; i < actual.size(); ++i) {
    if (!(actual[i] == expected[i])) {
      return ::testing::AssertionFailure()
             << name << ": first difference at entry " << i << " of " << actual.size() << ": got "
             << ::testing::PrintToString(actual[i]) << ", golden "
             << ::testing::PrintToString(expected[i]);
    }
  }
  return ::testing::AssertionSuccess();
}

/// Counts compared golden arrays per case (reported at the end of each parity test).
struct ArrayCounter {
  int compared = 0;
  template <typename T>
  void expect(const std::vector<T>& actual, const std::vector<T>& expected,
              const std::string& name) {
    ++compared;
    EXPECT_TRUE(same_list(actual, expected, name));
  }
};

}  // namespace nephroseg::gbmseg::golden
