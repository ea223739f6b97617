#include "options.h"

#include <cmath>
#include <cstdlib>
#include <sstream>

#include "nephroseg/core/error.h"

namespace nephroseg::cli {

void add_model_options(CLI::App& app, ModelSelection& sel, const ModelOptionSpec& spec) {
  const std::string pre = spec.role.empty() ? "" : "--" + spec.role + "-";
  auto names = [](std::string first, const std::vector<std::string>& more) {
    for (const auto& a : more) first += "," + a;
    return first;
  };
  const std::string ckpt = spec.role.empty() ? "--checkpoint" : pre + "checkpoint";
  const std::string type = spec.role.empty() ? "--model-type" : pre + "type";
  const std::string conf = spec.role.empty() ? "--model-config" : pre + "config";
  auto* c = app.add_option(names(ckpt, spec.aliases), sel.checkpoint, spec.what);
  if (spec.checkpoint_required) c->required();
  auto* t = app.add_option(names(type, spec.type_aliases), sel.type, spec.types)->capture_default_str();
  auto* j = app.add_option(names(conf, spec.config_aliases), sel.config,
                           "architecture as a JSON file (instead of " + type + ")");
  j->excludes(t);
}

CLI::Option* add_out_option(CLI::App& app, std::string& out, const std::string& what) {
  return app.add_option("--out", out, what)->required();
}

CLI::Option* add_shard_option(CLI::App& app, std::string& shard, const std::string& inputs) {
  return app.add_option("--shard", shard,
                        "K/N: process only the " + inputs +
                            " i with i mod N = K-1 (sorted by name); auto: from the Slurm job array "
                            "(SLURM_ARRAY_TASK_*). Then run `nephroseg merge OUT`");
}

std::vector<float> parse_numbers(const std::string& text, const std::string& option) {
  std::vector<float> v;
  std::stringstream ss(text);
  std::string tok;
  while (std::getline(ss, tok, ',')) v.push_back(static_cast<float>(parse_finite(tok, option)));
  NEPHRO_CHECK(!v.empty(), option, ": expected comma-separated numbers, got '", text, "'");
  return v;
}

double parse_finite(const std::string& text, const std::string& option) {
  const char* begin = text.c_str();
  char* end = nullptr;
  const double v = std::strtod(begin, &end);
  bool ok = end != begin && std::isfinite(v);
  for (const char* q = end; ok && q && *q; ++q) ok = (*q == ' ');
  NEPHRO_CHECK(ok, option, ": '", text, "' is not a finite number");
  return v;
}

std::array<float, 4> parse_box(const std::string& text, const std::string& option) {
  const auto v = parse_numbers(text, option);
  NEPHRO_CHECK(v.size() == 4, option, ": expected X0,Y0,X1,Y1, got '", text, "'");
  NEPHRO_CHECK(v[2] > v[0] && v[3] > v[1], option, ": expected X0,Y0,X1,Y1 with X1 > X0 and Y1 > Y0, got '", text, "'");
  return {v[0], v[1], v[2], v[3]};
}

}  // namespace nephroseg::cli
