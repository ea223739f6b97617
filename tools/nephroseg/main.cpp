// nephroseg: command-line front end. Thin by design: parse, call the library, map
// exceptions to exit codes (1 = error in input or run, 2 = usage error).
#include <unistd.h>

#include <iostream>
#include <map>

#include "command.h"
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

bool stderr_is_tty() { return ::isatty(STDERR_FILENO) != 0; }

}  // namespace nephroseg::cli

int main(int argc, char** argv) {
  using namespace nephroseg;
  using namespace nephroseg::cli;
  // Before anything large is allocated; see memory.h (NEPHROSEG_CPU_CACHE_MB=0 opts out).
  install_cpu_tensor_cache(cpu_tensor_cache_limit_from_env(size_t{2048} << 20));
  CLI::App app{"nephroseg: segment and measure kidney-biopsy images with foundation models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "nephroseg 0.1.0");
  app.add_option("--threads", g_options.threads, "intra-op threads (0 = all cores)")
      ->capture_default_str();
  app.add_flag("--quiet", g_options.quiet, "no progress lines");

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

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  set_log_sink([](LogLevel level, const std::string& message) {
    if (level == LogLevel::kDebug) return;
    if (level == LogLevel::kInfo) {
      if (!g_options.quiet) std::cerr << message << std::endl;
      return;
    }
    std::cerr << (level == LogLevel::kWarn ? "warning: " : "error: ") << message << std::endl;
  });
  configure_threads(g_options.threads);
  warn_if_slow_blas();

  for (auto& [sub, run] : runners) {
    if (!sub->parsed()) continue;
    try {
      return run();
    } catch (const nephroseg::Error& e) {
      std::cerr << "error: " << e.what() << std::endl;
      return 1;
    } catch (const std::exception& e) {
      std::cerr << "error: " << e.what() << std::endl;
      return 1;
    }
  }
  std::cerr << "error: no command given (see --help)" << std::endl;
  return 2;
}
