// Crash safety of atomic writes: temporaries next to the destination, removed on
// every error path, and stale ones from killed runs removed by
// remove_stale_temporaries() under the documented rule.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <utime.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "nephroseg/core/atomic_file.h"
#include "nephroseg/core/error.h"

namespace fs = std::filesystem;
using namespace nephroseg;

namespace {

std::string fresh_dir(const std::string& tag) {
  const fs::path d = fs::temp_directory_path() / ("nephroseg_atomic_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void touch(const std::string& path) { std::ofstream(path) << "partial"; }

size_t count_temporaries(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += is_temporary_name(e.path().filename().string());
  return n;
}

// A pid that is certainly not running: a child that has exited and been reaped.
long dead_pid() {
  const pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);
  return static_cast<long>(pid);
}

}  // namespace

TEST(AtomicFile, WritesReplaceAndLeaveNoTemporary) {
  const std::string dir = fresh_dir("write");
  write_file_atomically(dir + "/sub/a.txt", "hello");
  EXPECT_EQ(read(dir + "/sub/a.txt"), "hello");
  write_file_atomically(dir + "/sub/a.txt", "again");
  EXPECT_EQ(read(dir + "/sub/a.txt"), "again");
  EXPECT_EQ(count_temporaries(dir + "/sub"), 0u);
}

TEST(AtomicFile, FailedWriteKeepsTheOldFileAndRemovesTheTemporary) {
  const std::string dir = fresh_dir("fail");
  write_file_atomically(dir + "/a.png", "old");
  std::string seen;
  EXPECT_THROW(write_atomically(dir + "/a.png",
                                [&](const std::string& tmp) {
                                  seen = tmp;
                                  touch(tmp);
                                  throw std::runtime_error("encoder failed");
                                }),
               std::runtime_error);
  // The temporary was next to the destination, kept the extension last, and is gone.
  EXPECT_EQ(fs::path(seen).parent_path(), fs::path(dir));
  EXPECT_EQ(fs::path(seen).extension(), ".png");
  EXPECT_TRUE(is_temporary_name(fs::path(seen).filename().string()));
  EXPECT_FALSE(fs::exists(seen));
  EXPECT_EQ(read(dir + "/a.png"), "old");
  // A writer that never creates the file: the fsync step fails with a clear error.
  try {
    write_atomically(dir + "/b.png", [](const std::string&) {});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("b.png"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir + "/b.png"));
  // Renaming onto a folder fails: the temporary is removed too.
  fs::create_directories(dir + "/c.png/inside");
  EXPECT_THROW(write_file_atomically(dir + "/c.png", "x"), Error);
  EXPECT_EQ(count_temporaries(dir), 0u);
}

TEST(AtomicFile, TemporaryNamePattern) {
  long pid = 0;
  EXPECT_TRUE(is_temporary_name(".tmp-1234-0-overlay.png", &pid));
  EXPECT_EQ(pid, 1234);
  EXPECT_TRUE(is_temporary_name(".tmp-7-12-a"));
  for (const char* no : {"overlay.png", ".tmp-", ".tmp-12-overlay.png", ".tmp-x-0-a.png",
                         ".tmp-12-0-", "tmp-12-0-a.png", ".tmp-12--a.png"}) {
    EXPECT_FALSE(is_temporary_name(no)) << no;
  }
}

TEST(AtomicFile, StaleTemporariesOfKilledRunsAreRemovedOthersKept) {
  const std::string dir = fresh_dir("stale");
  const std::string self = std::to_string(::getpid());
  const std::string dead = std::to_string(dead_pid());
  touch(dir + "/.tmp-" + dead + "-0-overlay.png");            // owner gone: removed
  touch(dir + "/.tmp-" + self + "-3-mask.png");               // this process: kept
  touch(dir + "/.tmp-1-0-fresh.png");                         // pid 1 alive, file newer: kept
  touch(dir + "/.tmp-1-0-old.png");                           // pid 1 started after it: removed
  utimbuf old{1000, 1000};                                    // 1970: before any boot
  ASSERT_EQ(utime((dir + "/.tmp-1-0-old.png").c_str(), &old), 0);
  touch(dir + "/result.png");                                 // not a temporary: kept
  touch(dir + "/.tmp-notes");                                 // not our pattern: kept
  fs::create_directories(dir + "/.tmp-" + dead + "-1-folder");  // not a regular file: kept
  fs::create_directories(dir + "/sub");
  touch(dir + "/sub/.tmp-" + dead + "-2-deep.png");           // not recursive: kept

  EXPECT_EQ(remove_stale_temporaries(dir), 2u);
  EXPECT_FALSE(fs::exists(dir + "/.tmp-" + dead + "-0-overlay.png"));
  EXPECT_FALSE(fs::exists(dir + "/.tmp-1-0-old.png"));
  for (const std::string& kept :
       {"/.tmp-" + self + "-3-mask.png", std::string("/.tmp-1-0-fresh.png"), std::string("/result.png"),
        std::string("/.tmp-notes"), "/.tmp-" + dead + "-1-folder", "/sub/.tmp-" + dead + "-2-deep.png"}) {
    EXPECT_TRUE(fs::exists(dir + kept)) << kept;
  }
  EXPECT_EQ(remove_stale_temporaries(dir + "/missing"), 0u);
}

TEST(AtomicFile, TemporaryLeftBySigkillIsRemovedAtTheNextStart) {
  const std::string dir = fresh_dir("kill");
  const std::string dest = dir + "/overlay.png";
  const pid_t pid = fork();
  if (pid == 0) {
    write_atomically(dest, [](const std::string& tmp) {
      touch(tmp);          // a partial output...
      raise(SIGKILL);      // ...and the writer is killed before the rename
    });
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_FALSE(fs::exists(dest));
  ASSERT_EQ(count_temporaries(dir), 1u);
  EXPECT_EQ(remove_stale_temporaries(dir), 1u);
  EXPECT_EQ(count_temporaries(dir), 0u);
}

// Renaming over an existing device or pipe would replace it (as root, /dev/null for
// every process on the machine). A FIFO and a folder stand in for devices here: the
// test must not risk /dev/null itself.
TEST(AtomicFile, NeverReplacesWhatIsNotARegularFile) {
  const std::string dir = fresh_dir("special");
  const std::string fifo = dir + "/pipe.npy";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string folder = dir + "/folder.png";
  fs::create_directories(folder);
  const std::string link_to_fifo = dir + "/link.npy";
  fs::create_symlink(fifo, link_to_fifo);
  for (const std::string& target : {fifo, folder, link_to_fifo}) {
    try {
      write_file_atomically(target, "data");
      ADD_FAILURE() << "no error for " << target;
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("'" + target + "' exists and is "), std::string::npos) << what;
      EXPECT_NE(what.find("never replaces a device"), std::string::npos) << what;
    }
  }
  EXPECT_TRUE(fs::is_fifo(fifo));
  EXPECT_TRUE(fs::is_directory(folder));
  EXPECT_TRUE(fs::is_symlink(link_to_fifo));
  EXPECT_EQ(count_temporaries(dir), 0u);
  fs::remove_all(dir);
}

// A symbolic link to a regular file keeps being a link: the file it leads to gets the
// new content. A dangling link is refused rather than replaced.
TEST(AtomicFile, WritesThroughALinkToARegularFileAndRefusesADanglingOne) {
  const std::string dir = fresh_dir("links");
  write_file_atomically(dir + "/real.txt", "old");
  fs::create_symlink(dir + "/real.txt", dir + "/link.txt");
  write_file_atomically(dir + "/link.txt", "new");
  EXPECT_TRUE(fs::is_symlink(dir + "/link.txt"));
  EXPECT_EQ(read(dir + "/real.txt"), "new");
  fs::create_symlink(dir + "/missing.txt", dir + "/dangling.txt");
  EXPECT_THROW(write_file_atomically(dir + "/dangling.txt", "x"), Error);
  EXPECT_TRUE(fs::is_symlink(dir + "/dangling.txt"));
  EXPECT_FALSE(fs::exists(dir + "/missing.txt"));
  fs::remove_all(dir);
}
