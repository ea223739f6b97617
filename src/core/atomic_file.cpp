#include "nephroseg/core/atomic_file.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "nephroseg/core/error.h"

namespace fs = std::filesystem;

namespace nephroseg {

void write_atomically(const std::string& path,
                      const std::function<void(const std::string& tmp_path)>& write) {
  static std::atomic<int> counter{0};
  fs::path target(path);
  std::error_code ec;
  if (target.has_parent_path()) {
    fs::create_directories(target.parent_path(), ec);
    NEPHRO_CHECK(!ec, "cannot create folder '", target.parent_path().string(), "': ", ec.message());
  }
  // Keep the extension last: writers such as cv::imwrite pick the format from it.
  const std::string tmp = (target.parent_path() /
                           (".tmp-" + std::to_string(::getpid()) + "-" +
                            std::to_string(counter++) + "-" + target.filename().string()))
                              .string();
  try {
    write(tmp);
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    std::error_code ignore;
    fs::remove(tmp, ignore);
    NEPHRO_FAIL("cannot move '", tmp, "' to '", path, "': ", ec.message());
  }
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    NEPHRO_CHECK(out.good(), "cannot write '", tmp, "'");
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    NEPHRO_CHECK(out.good(), "error while writing '", path, "' (disk full?)");
  });
}

}  // namespace nephroseg
