// The main() of every test executable: GoogleTest's, after the same BLAS-kernel check
// the CLI makes (core/threads.h), so parity tests run the kernels a user's run gets.
#include <gtest/gtest.h>

#include "nephroseg/core/threads.h"

int main(int argc, char** argv) {
  nephroseg::rerun_with_better_blas_kernel(argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
