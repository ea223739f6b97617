#include "support/golden.h"

#include "nephroseg/core/error.h"

#include <ATen/ATen.h>
#include <torch/serialize.h>

#include <signal.h>
#include <unistd.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "nephroseg/core/memory.h"

extern char** environ;

namespace fs = std::filesystem;

namespace nephroseg::test {

namespace {
// NEPHROSEG_TEST_CPU_CACHE_MB=N runs a test binary under the caching CPU allocator that
// the CLI installs (scripts/test.sh runs the parity tests a second time that way).
const bool g_cpu_cache = [] {
  const char* env = std::getenv("NEPHROSEG_TEST_CPU_CACHE_MB");
  if (env == nullptr || *env == '\0') return false;
  const bool on =
      install_cpu_tensor_cache(static_cast<size_t>(std::strtoull(env, nullptr, 10)) << 20);
  std::fprintf(stderr, "[test support] caching CPU allocator %s\n", on ? "installed" : "NOT installed");
  return on;
}();
}  // namespace

std::string shared_dir() {
  static const std::string dir = [] {
    std::string candidate;
    if (const char* env = std::getenv("NEPHROSEG_SHARED"); env && *env) {
      candidate = env;
    } else {
      candidate = NEPHROSEG_SHARED_DIR_DEFAULT;
    }
    std::error_code ec;
    if (!fs::is_directory(candidate, ec)) return std::string();
    return fs::weakly_canonical(candidate, ec).string();
  }();
  return dir;
}

std::string shared_path(const std::string& rel) {
  const std::string dir = shared_dir();
  if (dir.empty()) return {};
  fs::path p = fs::path(dir) / rel;
  std::error_code ec;
  return fs::exists(p, ec) ? p.string() : std::string();
}

std::string temp_dir(const std::string& tag) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = tag;
  if (info) name += std::string("_") + info->test_suite_name() + "_" + info->name();
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') c = '_';
  }
  fs::path p = fs::temp_directory_path() / ("nephroseg_test_" + std::to_string(::getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

void remove_temp_root() {
  const fs::path root = fs::temp_directory_path() / ("nephroseg_test_" + std::to_string(::getpid()));
  std::error_code ec;
  if (!fs::exists(root, ec)) return;
  if (std::getenv("NEPHROSEG_KEEP_TEST_DIRS") != nullptr) {
    std::fprintf(stderr, "test folders kept in %s (NEPHROSEG_KEEP_TEST_DIRS)\n", root.string().c_str());
    return;
  }
  fs::remove_all(root, ec);
}

std::string binary_dir() { return NEPHROSEG_BINARY_DIR; }
std::string source_dir() { return NEPHROSEG_SOURCE_DIR; }

std::map<std::string, at::Tensor> load_ref_pt(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto ivalue = torch::pickle_load(bytes);
  std::map<std::string, at::Tensor> out;
  for (const auto& kv : ivalue.toGenericDict()) {
    out[kv.key().toStringRef()] = kv.value().toTensor();
  }
  return out;
}

CliRun run_cli(const std::string& args) {
  const std::string exe = binary_dir() + "/nephroseg";
  const std::string log = temp_dir("cli_log") + "/out.txt";
  const std::string cmd = exe + " --threads 2 " + args + " > " + log + " 2>&1";
  CliRun r;
  const int status = std::system(cmd.c_str());
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  r.output = ss.str();
  return r;
}

bool have_cli() { return fs::exists(binary_dir() + "/nephroseg"); }

bool run_cli_killed_after(const std::string& args, double seconds, const std::string& log, int* code) {
  const std::string cmd = "exec " + binary_dir() + "/nephroseg --threads 1 --quiet " + args + " > " + log + " 2>&1";
  const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
  pid_t pid = -1;
  if (posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) != 0) return false;
  const auto t0 = std::chrono::steady_clock::now();
  int status = 0;
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      if (code) *code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return true;
}

std::vector<std::string> temporaries_under(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return out;
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::recursive_directory_iterator(); ++it) {
    const std::string name = it->path().filename().string();
    if (name.rfind(".tmp-", 0) == 0) out.push_back(fs::relative(it->path(), dir).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  if (a.numel() == 0) return 0.0;
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

::testing::AssertionResult tensors_close(const at::Tensor& actual, const at::Tensor& expected,
                                         double atol, double rtol, const std::string& name) {
  if (!actual.defined() || !expected.defined()) {
    return ::testing::AssertionFailure() << name << ": undefined tensor";
  }
  if (actual.sizes() != expected.sizes()) {
    return ::testing::AssertionFailure()
           << name << ": shape " << actual.sizes() << " != expected " << expected.sizes();
  }
  if (actual.numel() == 0) return ::testing::AssertionSuccess();
  auto a = actual.to(at::kDouble);
  auto e = expected.to(at::kDouble);
  auto diff = (a - e).abs();
  auto allowed = atol + rtol * e.abs();
  const bool ok = (diff <= allowed).all().item<bool>();
  const double max_err = diff.max().item<double>();
  const double mean_err = diff.mean().item<double>();
  if (ok) {
    return ::testing::AssertionSuccess() << name << ": max " << max_err << " mean " << mean_err;
  }
  return ::testing::AssertionFailure() << name << ": max abs err " << max_err << ", mean abs err "
                                       << mean_err << " (atol " << atol << ", rtol " << rtol << ")";
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

at::Tensor unpack_bits(const at::Tensor& packed, int64_t h, int64_t w) {
  const int64_t n = packed.size(0);
  at::Tensor out = at::zeros({n, h, w}, at::kBool);
  const at::Tensor p = packed.contiguous();
  const uint8_t* src = p.data_ptr<uint8_t>();
  bool* dst = out.data_ptr<bool>();
  const int64_t row = p.size(1);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < h * w; ++k) dst[i * h * w + k] = (src[i * row + k / 8] >> (7 - k % 8)) & 1;
  return out;
}

double resident_mib() {
  std::ifstream statm("/proc/self/statm");
  long long pages = 0, resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

}  // namespace nephroseg::test
