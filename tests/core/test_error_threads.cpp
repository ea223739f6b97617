#include <gtest/gtest.h>

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
