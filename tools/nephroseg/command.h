// tools/nephroseg/command.h: how a subcommand plugs into the nephroseg CLI.
//
// Each subcommand lives in its own cmd_<name>.cpp and registers itself with
// NEPHRO_COMMAND(parent, name, description, setup). `setup` adds the options to the
// CLI11 subcommand and returns the function that runs it (returning the exit code).
// The library never parses argv and never prints; commands translate options into
// library calls and results into files and terminal lines.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "nephroseg/core/precision.h"

namespace nephroseg::cli {

using Runner = std::function<int()>;
using Setup = std::function<Runner(CLI::App&)>;

struct CommandSpec {
  std::string parent;  // "" for top level, e.g. "bench" or "glomsam" for nested ones
  std::string name;
  std::string description;
  Setup setup;
};

std::vector<CommandSpec>& command_registry();

struct CommandRegistrar {
  CommandRegistrar(std::string parent, std::string name, std::string description, Setup setup) {
    command_registry().push_back(
        {std::move(parent), std::move(name), std::move(description), std::move(setup)});
  }
};

/// Global options every command may read.
struct GlobalOptions {
  int threads = 0;     // 0 = all cores
  bool quiet = false;  // no progress lines
  /// --precision as given ("fp32" default) and --force-precision.
  std::string precision_text = "fp32";
  bool force_precision = false;
  /// Resolved once in main() (core/precision.h): what every command passes to the
  /// model loaders. Never kAuto.
  Precision precision = Precision::kFp32;
  Precision precision_requested = Precision::kFp32;
  /// precision_json(precision, precision_requested): for run.json / result.json.
  nlohmann::json precision_record() const;
};
const GlobalOptions& global_options();

/// True when stderr is a terminal (progress bars redraw in place only then).
bool stderr_is_tty();

}  // namespace nephroseg::cli

#define NEPHRO_CLI_CONCAT_(a, b) a##b
#define NEPHRO_CLI_CONCAT(a, b) NEPHRO_CLI_CONCAT_(a, b)
#define NEPHRO_COMMAND(parent, name, description, setup)                                \
  static ::nephroseg::cli::CommandRegistrar NEPHRO_CLI_CONCAT(nephro_cmd_, __LINE__)( \
      parent, name, description, setup)
