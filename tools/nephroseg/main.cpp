// nephroseg: command-line front end. Thin by design: parse, call the library, map
// exceptions to exit codes (options.h: 0 = success, 1 = error in input or run,
// 2 = usage error). Every message goes through the log sink installed here.
#include <unistd.h>

#include <iostream>
#include <map>

#include "command.h"
#include "options.h"
#include "nephroseg/core/error.h"
#include "nephroseg/core/log.h"
#include "nephroseg/core/memory.h"
#include "nephroseg/core/threads.h"

namespace nephroseg::cli {

std::vector<CommandSpec>& command_registry() {
  static std::vector<CommandSpec> registry;
  return registry;
}

namespace {
GlobalOptions g_options;
}

const GlobalOptions& global_options() { return g_options; }

nlohmann::json GlobalOptions::precision_record() const {
  return precision_json(precision, precision_requested);
}

bool stderr_is_tty() { return ::isatty(STDERR_FILENO) != 0; }

}  // namespace nephroseg::cli

int main(int argc, char** argv) {
  using namespace nephroseg;
  using namespace nephroseg::cli;
  // First of all: OpenBLAS picks its kernels when it is loaded (threads.h).
  rerun_with_better_blas_kernel(argv);
  // Before anything large is allocated; see memory.h (NEPHROSEG_CPU_CACHE_MB=0 opts out).
  install_cpu_tensor_cache(cpu_tensor_cache_limit_from_env(size_t{2048} << 20));
  CLI::App app{"nephroseg: segment and measure kidney-biopsy images with foundation models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "nephroseg 0.1.0");
  app.add_option("--threads", g_options.threads, "intra-op threads (0 = all cores)")
      ->capture_default_str();
  app.add_flag("--quiet", g_options.quiet, "no progress lines");
  app.add_option("--precision", g_options.precision_text,
                 "model inference precision: fp32 | bf16 | int8 | auto (bf16 where the CPU has "
                 "native bf16, else fp32); see docs/precision.md")
      ->check(CLI::IsMember(precision_names().all_spellings()))
      ->capture_default_str();
  app.add_flag("--force-precision", g_options.force_precision,
               "run bf16 even where the CPU only emulates it (slower than fp32)");
  app.footer(
      "Exit codes (every command): 0 success; 1 failure (bad input file or value, failed run; one\n"
      "'error:' line on stderr); 2 usage error (unknown, missing or malformed option).\n"
      "Results (tables, JSON) go to stdout or files; progress, warnings and errors to stderr.");

  std::map<std::string, CLI::App*> parents;
  parents[""] = &app;
  auto parent_app = [&](const std::string& name) -> CLI::App* {
    auto it = parents.find(name);
    if (it != parents.end()) return it->second;
    CLI::App* sub = app.add_subcommand(name, name + " subcommands");
    sub->require_subcommand(1);
    parents[name] = sub;
    return sub;
  };
  std::vector<std::pair<CLI::App*, Runner>> runners;
  for (auto& spec : command_registry()) {
    CLI::App* sub = parent_app(spec.parent)->add_subcommand(spec.name, spec.description);
    runners.emplace_back(sub, spec.setup(*sub));
  }

  set_log_sink([](LogLevel level, const std::string& message) {
    if (level == LogLevel::kDebug) return;
    if (level == LogLevel::kInfo) {
      if (!g_options.quiet) std::cerr << message << std::endl;
      return;
    }
    std::cerr << (level == LogLevel::kWarn ? "warning: " : "error: ") << message << std::endl;
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with exit code 0: let CLI11 print them.
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    log_error(e.what(), " (see --help)");
    return 2;
  }
  configure_threads(g_options.threads);
  warn_if_slow_blas();
  try {
    g_options.precision_requested = precision_names().parse(g_options.precision_text, "--precision");
    g_options.precision = resolve_precision(g_options.precision_requested, g_options.force_precision);
  } catch (const std::exception& e) {
    log_error(e.what());
    return 1;
  }

  for (auto& [sub, run] : runners) {
    if (!sub->parsed()) continue;
    try {
      return run();
    } catch (const UsageError& e) {
      log_error(e.what(), " (see --help)");
      return 2;
    } catch (const CLI::ParseError& e) {  // a command's own late option parsing
      log_error(e.what(), " (see --help)");
      return 2;
    } catch (const std::exception& e) {  // nephroseg::Error and anything else
      log_error(e.what());
      return 1;
    }
  }
  log_error("no command given (see --help)");
  return 2;
}
