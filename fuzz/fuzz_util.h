// fuzz/fuzz_util.h: helpers shared by the libFuzzer targets.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>

#include "nephroseg/core/error.h"

namespace nephroseg::fuzz {

// Readers that only take a path get the input through one scratch file per process
// (in /dev/shm when it exists, so no disk I/O), named with `ext`. The pid is padded
// to a fixed width: the path's length reaches the coverage counters (error messages,
// extension parsing), and a run with a fixed -seed must take the same paths every time.
inline std::string scratch_file(const uint8_t* data, size_t size, const std::string& ext) {
  static const std::string base = [] {
    char pid[32];
    std::snprintf(pid, sizeof pid, "%010d", static_cast<int>(getpid()));
    return std::string(access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp") + "/nephroseg_fuzz_" + pid;
  }();
  const std::string path = base + ext;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

// Runs fn; nephroseg::Error is the expected outcome of bad input. Any other exception
// escaping a reader is a bug (a raw library message reaching the user): abort, so that
// libFuzzer records the input.
template <typename Fn>
void expect_only_our_errors(Fn&& fn) {
  try {
    fn();
  } catch (const nephroseg::Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "non-nephroseg exception: %s\n", e.what());
    std::abort();
  }
}

}  // namespace nephroseg::fuzz
