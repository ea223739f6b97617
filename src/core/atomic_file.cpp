#include "nephroseg/core/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "nephroseg/core/error.h"

namespace fs = std::filesystem;

namespace nephroseg {

namespace {

const char kTmpPrefix[] = ".tmp-";

// fsync of a file or folder; returns errno (0 on success).
int sync_path(const std::string& path, bool folder) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (folder ? O_DIRECTORY : 0));
  if (fd < 0) return errno;
  int err = ::fsync(fd) == 0 ? 0 : errno;
  // Some file systems cannot fsync a folder (EINVAL): the rename is then as durable
  // as they make it.
  if (folder && err == EINVAL) err = 0;
  ::close(fd);
  return err;
}

// Start time of process pid in seconds since the epoch; < 0 when unknown.
double process_start_time(long pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return -1;
  // Field 2 (comm) may hold spaces and parentheses: fields resume after the last ')'.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(line.substr(close + 1));
  std::string field;
  unsigned long long start_ticks = 0;
  for (int k = 3; k <= 22 && rest >> field; ++k) {
    if (k == 22) start_ticks = std::strtoull(field.c_str(), nullptr, 10);
  }
  std::ifstream proc_stat("/proc/stat");
  long long btime = -1;
  while (std::getline(proc_stat, line)) {
    if (line.rfind("btime ", 0) == 0) btime = std::strtoll(line.c_str() + 6, nullptr, 10);
  }
  const long hz = sysconf(_SC_CLK_TCK);
  if (btime < 0 || hz <= 0 || start_ticks == 0) return -1;
  return static_cast<double>(btime) + static_cast<double>(start_ticks) / static_cast<double>(hz);
}

const char* file_kind(mode_t mode) {
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a named pipe";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISDIR(mode)) return "a folder";
  return "not a regular file";
}

// The file the rename will put in place: `path` itself, or, where `path` is a symbolic
// link to a regular file, the file it leads to (so the link survives). An existing
// target that is not a regular file is refused: renaming over /dev/null (as root) or a
// pipe would replace it for every process on the machine, and the user plainly did
// not mean a stream, since a stream would receive a whole file only at the end.
fs::path checked_target(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    struct stat link {};
    NEPHRO_CHECK(::lstat(path.c_str(), &link) != 0,
                 "output '", path, "' is a symbolic link that leads nowhere; remove it or choose another path");
    return fs::path(path);  // a new file
  }
  NEPHRO_CHECK(S_ISREG(st.st_mode), "output '", path, "' exists and is ", file_kind(st.st_mode),
               "; nephroseg writes each output as a new regular file and never replaces a "
               "device, pipe, socket or folder: choose another path");
  struct stat link {};
  if (::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode)) {
    std::error_code ec;
    const fs::path real = fs::canonical(path, ec);
    NEPHRO_CHECK(!ec, "cannot resolve the symbolic link '", path, "': ", ec.message());
    return real;
  }
  return fs::path(path);
}

}  // namespace

void write_atomically(const std::string& path,
                      const std::function<void(const std::string& tmp_path)>& write) {
  static std::atomic<int> counter{0};
  const fs::path target = checked_target(path);
  std::error_code ec;
  if (target.has_parent_path()) {
    fs::create_directories(target.parent_path(), ec);
    NEPHRO_CHECK(!ec, "cannot create folder '", target.parent_path().string(), "': ", ec.message());
  }
  // Keep the extension last: writers such as cv::imwrite pick the format from it.
  const std::string tmp = (target.parent_path() /
                           (kTmpPrefix + std::to_string(::getpid()) + "-" +
                            std::to_string(counter++) + "-" + target.filename().string()))
                              .string();
  auto discard = [&] {
    std::error_code ignore;
    fs::remove(tmp, ignore);
  };
  try {
    write(tmp);
  } catch (...) {
    discard();
    throw;
  }
  if (const int err = sync_path(tmp, /*folder=*/false)) {
    discard();
    NEPHRO_FAIL("cannot write '", path, "': ", std::strerror(err));
  }
  // Checked again: the target may have changed while the temporary was written.
  try {
    checked_target(target.string());
  } catch (...) {
    discard();
    throw;
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    discard();
    NEPHRO_FAIL("cannot move '", tmp, "' to '", path, "': ", ec.message());
  }
  const std::string folder = target.has_parent_path() ? target.parent_path().string() : ".";
  if (const int err = sync_path(folder, /*folder=*/true)) {
    NEPHRO_FAIL("wrote '", path, "' but cannot sync its folder: ", std::strerror(err));
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

bool is_temporary_name(const std::string& name, long* pid) {
  const size_t n = sizeof(kTmpPrefix) - 1;
  if (name.compare(0, n, kTmpPrefix) != 0) return false;
  size_t k = n;
  long value = 0;
  auto digits = [&](long* out) {
    const size_t start = k;
    long v = 0;
    while (k < name.size() && name[k] >= '0' && name[k] <= '9' && k - start < 10) {
      v = v * 10 + (name[k] - '0');
      ++k;
    }
    if (out) *out = v;
    return k > start && k < name.size() && name[k] == '-';
  };
  if (!digits(&value)) return false;
  ++k;
  if (!digits(nullptr)) return false;
  if (k + 1 >= name.size()) return false;  // a destination name must follow
  if (pid) *pid = value;
  return true;
}

size_t remove_stale_temporaries(const std::string& folder) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return 0;
  size_t removed = 0;
  const long self = static_cast<long>(::getpid());
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    long pid = 0;
    if (!is_temporary_name(it->path().filename().string(), &pid) || pid == self) continue;
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    bool stale = pid <= 0;
    if (!stale) {
      if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
        stale = true;  // no such process
      } else {
        // Running (or not ours to signal): stale only if it started after the file
        // was last written, i.e. the pid was reused by another process.
        const double started = process_start_time(pid);
        stale = started > 0 && started > static_cast<double>(st.st_mtime) + 1.0;
      }
    }
    std::error_code rm;
    if (stale && fs::remove(it->path(), rm)) ++removed;
  }
  return removed;
}

}  // namespace nephroseg
