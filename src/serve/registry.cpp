#include "serve/registry.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include "nephroseg/core/error.h"
#include "nephroseg/sam/sam.h"
#include "nephroseg/workloads/model_files.h"

namespace fs = std::filesystem;

namespace nephroseg::serve {

TypeSupport type_support(const std::string& type) {
  static const std::set<std::string> served = {"vit_b", "vit_l", "vit_h"};
  static const std::set<std::string> known = {"vit_t", "sam2_l", "sam2_bp", "sam2_s", "sam2_t", "sam3"};
  if (served.count(type)) return TypeSupport::kServed;
  if (known.count(type)) return TypeSupport::kNotSupported;
  return TypeSupport::kUnknown;
}

std::string served_types_text() { return "vit_b, vit_l, vit_h (SAM and MedSAM checkpoints)"; }

namespace {

std::string string_field(const nlohmann::json& o, const char* key, const std::string& where) {
  if (!o.contains(key)) return {};
  NEPHRO_CHECK(o[key].is_string(), where, ": \"", key, "\" must be a string");
  return o[key].get<std::string>();
}

std::string resolve(const std::string& path, const fs::path& base) {
  if (path.empty()) return path;
  const fs::path p(path);
  return p.is_absolute() ? p.string() : (base / p).lexically_normal().string();
}

}  // namespace

std::vector<std::unique_ptr<ModelEntry>> read_weights_file(const std::string& path, Precision fallback) {
  std::ifstream in(path);
  NEPHRO_CHECK(in, "--weights ", path, ": cannot be read");
  nlohmann::json list = nlohmann::json::parse(in, nullptr, false);
  NEPHRO_CHECK(!list.is_discarded(), "--weights ", path, ": not valid JSON");
  NEPHRO_CHECK(list.is_array(), "--weights ", path, ": must be a JSON list of entries");
  const fs::path base = fs::absolute(path).parent_path();
  static const std::set<std::string> keys = {"name", "kind", "type", "checkpoint", "model_type",
                                             "model_config", "precision"};
  static const std::set<std::string> kinds = {"sam", "medsam", "glomsam", "gbmseg"};
  std::vector<std::unique_ptr<ModelEntry>> entries;
  for (size_t i = 0; i < list.size(); ++i) {
    const nlohmann::json& o = list[i];
    std::string where = "--weights " + path + " entry " + std::to_string(i);
    NEPHRO_CHECK(o.is_object(), where, ": must be an object");
    auto e = std::make_unique<ModelEntry>();
    e->name = string_field(o, "name", where);
    NEPHRO_CHECK(!e->name.empty(), where, ": \"name\" is required");
    where += " (\"" + e->name + "\")";
    for (const auto& item : o.items())
      NEPHRO_CHECK(keys.count(item.key()), where, ": unknown key \"", item.key(),
                   "\" (known: name, kind, type, checkpoint, model_type, model_config, precision)");
    e->kind = o.contains("kind") ? string_field(o, "kind", where) : "sam";
    NEPHRO_CHECK(kinds.count(e->kind), where, ": unknown kind \"", e->kind, "\" (sam, medsam, glomsam, gbmseg)");
    e->checkpoint = resolve(string_field(o, "checkpoint", where), base);
    NEPHRO_CHECK(!e->checkpoint.empty(), where, ": \"checkpoint\" is required");
    e->model_type = string_field(o, "model_type", where);
    e->model_config = resolve(string_field(o, "model_config", where), base);
    if (e->model_type.empty() && e->model_config.empty()) e->model_type = e->kind == "medsam" ? "medsam" : "vit_b";
    e->type = string_field(o, "type", where);
    if (e->type.empty()) e->type = e->model_type == "medsam" || e->model_type.empty() ? "vit_b" : e->model_type;
    NEPHRO_CHECK(type_support(e->type) == TypeSupport::kServed, where, ": type \"", e->type,
                 "\" is not served (", served_types_text(), ")");
    const std::string precision = string_field(o, "precision", where);
    e->precision = precision.empty() ? fallback : precision_names().parse(precision, where + ": precision");
    for (const auto& other : entries)
      NEPHRO_CHECK(other->name != e->name, where, ": the name is used twice");
    entries.push_back(std::move(e));
  }
  return entries;
}

std::vector<std::unique_ptr<ModelEntry>> scan_models_dir(const std::string& dir, Precision fallback) {
  NEPHRO_CHECK(fs::is_directory(dir), "--models ", dir, ": not a folder");
  std::vector<std::unique_ptr<ModelEntry>> entries;
  for (const auto& c : workloads::official_checkpoints()) {
    if (c.family != "sam" && c.family != "medsam") continue;
    const fs::path file = fs::path(dir) / c.file;
    if (!fs::is_regular_file(file)) continue;
    auto e = std::make_unique<ModelEntry>();
    e->name = file.stem().string();
    e->kind = c.family;
    e->model_type = c.type;
    e->type = c.family == "medsam" ? "vit_b" : c.type;
    e->checkpoint = file.string();
    e->precision = fallback;
    entries.push_back(std::move(e));
  }
  return entries;
}

std::shared_ptr<const sam::SamModel> load_entry(ModelEntry& entry) {
  std::lock_guard<std::mutex> lock(entry.load_mutex);
  if (entry.model) return entry.model;
  NEPHRO_CHECK(entry.kind == "sam" || entry.kind == "medsam", "model ", entry.name, ": kind ", entry.kind,
               " is not a SAM model");
  const sam::SamConfig config = entry.model_config.empty() ? sam::SamConfig::preset(entry.model_type)
                                                           : sam::SamConfig::from_json(entry.model_config);
  entry.model = sam::SamModel::load(entry.checkpoint, config, resolve_precision(entry.precision));
  return entry.model;
}

}  // namespace nephroseg::serve
