#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <string>

#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/core/threads.h"

using namespace nephroseg;

TEST(Error, CheckBuildsMessageFromParts) {
  try {
    NEPHRO_CHECK(1 + 1 == 3, "value ", 42, " is wrong in '", "file.png", "'");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "value 42 is wrong in 'file.png'");
  }
  EXPECT_NO_THROW(NEPHRO_CHECK(true, "never"));
}

TEST(Threads, ConfigureSetsRequestedCount) {
  EXPECT_EQ(configure_threads(1), 1);
  EXPECT_GE(configure_threads(0), 1);
}

TEST(Log, SinkReceivesMessagesAtOrAboveLevel) {
  std::vector<std::string> got;
  set_log_sink([&](LogLevel, const std::string& m) { got.push_back(m); });
  set_log_level(LogLevel::kInfo);
  log_debug("hidden");
  log_info("a", 1);
  log_warn("b", 2);
  set_log_sink(nullptr);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], "a1");
  EXPECT_EQ(got[1], "b2");
}

// OpenBLAS 0.3.21 falls back to SSE3 kernels on CPUs newer than it (an Emerald Rapids
// Xeon: 'Prescott', sgemm at a quarter speed, GlomSAM training gradients 1.2e-4 off the
// goldens). The test main re-runs itself as the CLI does; after that, no better kernel
// set should be left on the table, and a fallback kernel must be reported as such.
TEST(Threads, OpenBlasRunsTheBestKernelSetThisCpuHas) {
  const std::string kernel = openblas_kernel();
  if (kernel.empty()) {
    GTEST_SKIP() << "OpenBLAS is not the BLAS in this process (" << active_blas_library() << ")";
  }
  EXPECT_EQ(better_openblas_kernel(), "") << "OpenBLAS still runs '" << kernel << "'";
  if (const char* forced = std::getenv("OPENBLAS_CORETYPE")) {
    std::string want = forced;
    std::string got = kernel;
    for (auto* s : {&want, &got})
      for (char& c : *s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    // A name OpenBLAS does not accept makes it detect the CPU itself, so only a match
    // is checked when the name is one it reports back.
    if (want == "skylakex" || want == "haswell") {
      EXPECT_EQ(got, want);
    }
  }
}
