// The main() of every test executable: GoogleTest's, after the same BLAS-kernel check
// the CLI makes (core/threads.h), so parity tests run the kernels a user's run gets;
// afterwards the process's test folders are removed (support/golden.h).
#include <gtest/gtest.h>

#include "nephroseg/core/threads.h"
#include "support/golden.h"

int main(int argc, char** argv) {
  nephroseg::rerun_with_better_blas_kernel(argv);
  ::testing::InitGoogleTest(&argc, argv);
  const int status = RUN_ALL_TESTS();
  // Every test's temp_dir() is under it; kept when a test failed, for its files.
  if (status == 0) nephroseg::test::remove_temp_root();
  return status;
}
