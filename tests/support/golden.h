// tests/support/golden.h: helpers shared by every test suite.
//
// Golden vectors and sample data live in ../shared beside the checkout (or in
// $NEPHROSEG_SHARED). A user's fresh clone does not have it: tests that need it call
// NEPHRO_REQUIRE_SHARED("golden/models/sam_tiny.pth") and are skipped with a clear
// message; in CI the folder is present and they run.
#pragma once

#include <ATen/core/Tensor.h>
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace nephroseg::test {

/// The shared folder, or "" when it does not exist.
std::string shared_dir();
/// shared_dir() + "/" + rel, or "" when shared is absent or the path does not exist.
std::string shared_path(const std::string& rel);
/// A fresh empty temporary folder for one test (removed at process exit).
std::string temp_dir(const std::string& tag);
/// The build folder (for running the CLI binary from tests).
/// Removes this process's folder of temp_dir()s (/tmp/nephroseg_test_<pid>), unless
/// NEPHROSEG_KEEP_TEST_DIRS is set (then it says where it is). The test main calls it
/// after the tests when all passed, so a passing run leaves nothing in /tmp (a failing
/// one keeps its files to look at).
void remove_temp_root();
std::string binary_dir();
std::string source_dir();

/// Loads a plain dict of tensors written by Python's torch.save (the *.ref.pt files).
std::map<std::string, at::Tensor> load_ref_pt(const std::string& path);

/// Compares two tensors: shapes equal, max |a-b| <= atol + rtol*|b| elementwise.
/// On failure the message names the tensor and gives max-abs and mean-abs errors.
::testing::AssertionResult tensors_close(const at::Tensor& actual, const at::Tensor& expected,
                                         double atol, double rtol = 0.0,
                                         const std::string& name = "");
/// The message of the nephroseg::Error that f() throws ("" when it throws none).
std::string error_of(const std::function<void()>& f);

/// Result of running the built `nephroseg` CLI: exit code and stdout + stderr.
struct CliRun {
  int code = -1;
  std::string output;
};
/// Runs `<build>/nephroseg --threads 2 <args>` and captures its output.
CliRun run_cli(const std::string& args);
/// True when the nephroseg CLI binary has been built.
bool have_cli();
/// Starts `<build>/nephroseg --threads 1 --quiet <args>` (output to `log`) and sends it
/// SIGKILL after `seconds`. Returns true when the kill hit a running process, false
/// when the command had already finished (then *code, if given, is its exit code).
bool run_cli_killed_after(const std::string& args, double seconds, const std::string& log, int* code = nullptr);
/// Files under `dir` (recursive, relative paths, sorted) whose name has the atomic
/// writers' temporary pattern `.tmp-<pid>-<n>-...` (core/atomic_file.h).
std::vector<std::string> temporaries_under(const std::string& dir);

/// Max |a - b| as a double (shapes must match).
/// Masks stored as np.packbits rows (big bit order), [N, ceil(H*W/8)] uint8 -> [N, H, W]
/// bool.
at::Tensor unpack_bits(const at::Tensor& packed, int64_t h, int64_t w);

/// This process's resident memory in MiB (/proc/self/statm).
double resident_mib();

double max_abs_diff(const at::Tensor& a, const at::Tensor& b);

}  // namespace nephroseg::test

#define NEPHRO_REQUIRE_SHARED(rel)                                                  \
  do {                                                                              \
    if (::nephroseg::test::shared_path(rel).empty()) {                           \
      GTEST_SKIP() << "needs ../shared/" << (rel)                                   \
                   << " (golden vectors / sample data; absent in a fresh clone;"    \
                   << " set NEPHROSEG_SHARED to point at it)";                     \
    }                                                                               \
  } while (false)

#define EXPECT_TENSOR_CLOSE(actual, expected, atol, name) \
  EXPECT_TRUE(::nephroseg::test::tensors_close((actual), (expected), (atol), 0.0, (name)))
#define ASSERT_TENSOR_CLOSE(actual, expected, atol, name) \
  ASSERT_TRUE(::nephroseg::test::tensors_close((actual), (expected), (atol), 0.0, (name)))
