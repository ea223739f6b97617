// tools/nephroseg/options.h: option spellings and parsing rules shared by every
// subcommand, so that an option means the same thing wherever it appears.
//
// Exit codes (every subcommand; documented in `nephroseg --help` and the README):
//   0  success
//   1  failure: bad input file, bad value, a failed run (one `error:` line on stderr)
//   2  usage error: unknown or missing option, malformed option syntax
//
// Output: results that a script reads (tables, JSON) go to stdout; messages
// (progress, warnings, errors) go through the library's log sink to stderr.
#pragma once

#include <CLI/CLI.hpp>

#include <array>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace nephroseg::cli {

/// Thrown by a command for a usage problem CLI11 cannot see (e.g. two options that
/// exclude each other); main() prints it as one `error:` line and exits 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// How one model is chosen: a checkpoint, a named architecture, or a JSON config.
struct ModelSelection {
  std::string checkpoint;
  std::string type;
  std::string config;
};

/// The one spelling of model selection. A command with one model takes
///   --checkpoint FILE  --model-type NAME  --model-config JSON
/// A command with several models prefixes each with the model's role:
///   --sam-checkpoint FILE  --sam-type NAME  --sam-config JSON
/// `aliases` are extra names for the checkpoint option (older spellings such as
/// "--sam"); `type_aliases` / `config_aliases` likewise. The type option is given its
/// default (shown in --help); the config option excludes the type option.
struct ModelOptionSpec {
  ModelOptionSpec(std::string role_, std::string what_, std::string types_, bool checkpoint_required_ = true,
                  std::vector<std::string> aliases_ = {})
      : role(std::move(role_)),
        what(std::move(what_)),
        types(std::move(types_)),
        checkpoint_required(checkpoint_required_),
        aliases(std::move(aliases_)) {}
  std::string role;   // "" for the single-model spelling, else e.g. "sam", "dinov2"
  std::string what;   // e.g. "SAM / MedSAM checkpoint (.pth)"
  std::string types;  // e.g. "vit_b | vit_l | vit_h | medsam"
  bool checkpoint_required = true;
  std::vector<std::string> aliases, type_aliases, config_aliases;
};
void add_model_options(CLI::App& app, ModelSelection& sel, const ModelOptionSpec& spec);

/// `--out DIR`, required.
CLI::Option* add_out_option(CLI::App& app, std::string& out, const std::string& what = "output folder");

/// `--shard K/N|auto` (core/shard.h); `inputs` names what is split ("images").
CLI::Option* add_shard_option(CLI::App& app, std::string& shard, const std::string& inputs);

/// "X0,Y0,X1,Y1": four finite numbers with X1 > X0 and Y1 > Y0 (original-image
/// pixels). Errors name `option` and the text.
std::array<float, 4> parse_box(const std::string& text, const std::string& option = "--box");

/// "a,b,c": finite numbers; errors name `option`.
std::vector<float> parse_numbers(const std::string& text, const std::string& option);

/// A finite number from text, or an error naming `option` (std::stod alone accepts
/// "nan", "inf" and leading garbage-free prefixes such as "3x").
double parse_finite(const std::string& text, const std::string& option);

}  // namespace nephroseg::cli
