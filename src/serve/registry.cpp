#include "serve/registry.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <algorithm>
#include <cmath>
#include <set>

#include "nephroseg/core/error.h"
#include "nephroseg/gbmseg/model_backends.h"
#include "nephroseg/gbmseg/pipeline.h"
#include "nephroseg/gbmseg/prompt_names.h"
#include "nephroseg/glomsam/glomsam.h"
#include "nephroseg/io/image.h"
#include "nephroseg/io/mask.h"
#include "nephroseg/sam/sam.h"
#include "nephroseg/workloads/gbmseg.h"
#include "nephroseg/workloads/glomsam_predict.h"
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

namespace {

const std::vector<std::string> kSamKeys = {"name", "kind", "type", "checkpoint", "model_type", "model_config",
                                           "precision"};
const std::vector<std::string> kGlomSamKeys = {"name", "kind", "type", "checkpoint", "config", "threshold",
                                               "precision"};
const std::vector<std::string> kGbmSegKeys = {"name",       "kind",           "type",           "dinov2", "sam",
                                              "reference_images", "reference_masks", "preset", "precision"};

std::string joined(const std::vector<std::string>& words) {
  std::string s;
  for (const auto& w : words) s += (s.empty() ? "" : ", ") + w;
  return s;
}

void check_keys(const nlohmann::json& o, const std::vector<std::string>& keys, const std::string& where,
                const std::string& what) {
  for (const auto& item : o.items())
    NEPHRO_CHECK(std::find(keys.begin(), keys.end(), item.key()) != keys.end(), where, ": unknown key \"",
                 item.key(), "\" for ", what, " (known: ", joined(keys), ")");
}

std::string required_path(const nlohmann::json& o, const char* key, const fs::path& base, const std::string& where) {
  const std::string path = resolve(string_field(o, key, where), base);
  NEPHRO_CHECK(!path.empty(), where, ": \"", key, "\" is required");
  return path;
}

/// kind sam / medsam: checkpoint + model_type | model_config.
void read_sam_fields(const nlohmann::json& o, ModelEntry& e, const fs::path& base, const std::string& where) {
  check_keys(o, kSamKeys, where, "kind " + e.kind);
  e.checkpoint = required_path(o, "checkpoint", base, where);
  e.model_type = string_field(o, "model_type", where);
  e.model_config = resolve(string_field(o, "model_config", where), base);
  if (e.model_type.empty() && e.model_config.empty()) e.model_type = e.kind == "medsam" ? "medsam" : "vit_b";
}

/// kind glomsam: checkpoint + config (a preset name as `glomsam predict --config`, or a
/// JSON file relative to the weights file).
void read_glomsam_fields(const nlohmann::json& o, ModelEntry& e, const fs::path& base, const std::string& where) {
  check_keys(o, kGlomSamKeys, where, "kind glomsam");
  e.checkpoint = required_path(o, "checkpoint", base, where);
  e.glomsam_threshold = workloads::GlomSamPredictOptions{}.threshold;  // `glomsam predict --threshold`
  if (o.contains("threshold")) {
    NEPHRO_CHECK(o["threshold"].is_number() && std::isfinite(o["threshold"].get<double>()), where,
                 ": \"threshold\" must be a finite number (a logit; 0.5 as `glomsam predict`)");
    e.glomsam_threshold = o["threshold"].get<double>();
  }
  const std::string config = string_field(o, "config", where);
  static const std::set<std::string> presets = {"", "auto", "official", "vit_b", "glomsam", "tiny"};
  if (presets.count(config)) {
    e.glomsam_config = config.empty() ? "auto" : config;
  } else {
    e.glomsam_config = resolve(config, base);
    NEPHRO_CHECK(fs::is_regular_file(e.glomsam_config), where, ": \"config\" ", config,
                 " is neither auto, official nor tiny, and no such JSON file");
  }
}

/// A gbmseg model: {"checkpoint", "model_type" | "model_config"}.
ModelEntry::Backend read_backend(const nlohmann::json& o, const char* key, const fs::path& base,
                                 const std::string& where) {
  NEPHRO_CHECK(o.contains(key) && o[key].is_object(), where, ": \"", key,
               "\" is required: an object {\"checkpoint\", \"model_type\" or \"model_config\"}");
  const nlohmann::json& b = o[key];
  const std::string at = where + ": \"" + key + "\"";
  check_keys(b, {"checkpoint", "model_type", "model_config"}, at, "a gbmseg model");
  ModelEntry::Backend backend;
  backend.checkpoint = required_path(b, "checkpoint", base, at);
  backend.model_type = string_field(b, "model_type", at);
  backend.model_config = resolve(string_field(b, "model_config", at), base);
  NEPHRO_CHECK(!backend.model_type.empty() || !backend.model_config.empty(), at,
               ": give \"model_type\" or \"model_config\"");
  return backend;
}

/// A non-empty list of existing files.
std::vector<std::string> read_files(const nlohmann::json& o, const char* key, const fs::path& base,
                                    const std::string& where) {
  NEPHRO_CHECK(o.contains(key) && o[key].is_array() && !o[key].empty(), where, ": \"", key,
               "\" is required: a non-empty list of files");
  std::vector<std::string> files;
  for (size_t i = 0; i < o[key].size(); ++i) {
    const std::string at = where + ": \"" + key + "\"[" + std::to_string(i) + "]";
    NEPHRO_CHECK(o[key][i].is_string(), at, " must be a file path");
    files.push_back(resolve(o[key][i].get<std::string>(), base));
    NEPHRO_CHECK(fs::is_regular_file(files.back()), at, ": no such file ", files.back());
  }
  return files;
}

/// kind gbmseg: the DINOv2 and SAM models, the reference pairs and the prompt preset.
void read_gbmseg_fields(const nlohmann::json& o, ModelEntry& e, const fs::path& base, const std::string& where) {
  check_keys(o, kGbmSegKeys, where, "kind gbmseg");
  e.dinov2 = read_backend(o, "dinov2", base, where);
  e.sam = read_backend(o, "sam", base, where);
  e.reference_images = read_files(o, "reference_images", base, where);
  NEPHRO_CHECK(o.contains("reference_masks"), where, ": \"reference_masks\" is required: one mask per reference "
               "image");
  e.reference_masks = read_files(o, "reference_masks", base, where);
  NEPHRO_CHECK(e.reference_masks.size() == e.reference_images.size(), where, ": \"reference_masks\" lists ",
               e.reference_masks.size(), " file(s) for ", e.reference_images.size(),
               " reference image(s): give one mask per image");
  const std::string preset = string_field(o, "preset", where);
  if (!preset.empty())
    e.preset = gbmseg::prompt_preset_names().name(gbmseg::prompt_preset_names().parse(preset, where + ": \"preset\""));
}

std::unique_ptr<ModelEntry> read_entry(const nlohmann::json& o, std::string where, const fs::path& base,
                                       Precision fallback) {
  static const std::set<std::string> kinds = {"sam", "medsam", "glomsam", "gbmseg", "dinov2"};
  NEPHRO_CHECK(o.is_object(), where, ": must be an object");
  auto e = std::make_unique<ModelEntry>();
  e->name = string_field(o, "name", where);
  NEPHRO_CHECK(!e->name.empty(), where, ": \"name\" is required");
  where += " (\"" + e->name + "\")";
  e->kind = o.contains("kind") ? string_field(o, "kind", where) : "sam";
  NEPHRO_CHECK(kinds.count(e->kind), where, ": unknown kind \"", e->kind, "\" (sam, medsam, glomsam, gbmseg, dinov2)");
  if (e->kind == "glomsam")
    read_glomsam_fields(o, *e, base, where);
  else if (e->kind == "gbmseg")
    read_gbmseg_fields(o, *e, base, where);
  else
    read_sam_fields(o, *e, base, where);
  if (e->kind == "dinov2") {
    // A feature extractor for the workbench's GBMSeg runs: never offered to samapi clients.
    NEPHRO_CHECK(o.contains("model_type") || o.contains("model_config"), where,
                 ": a dinov2 entry needs \"model_type\" (vits14 .. vitg14) or \"model_config\"");
    NEPHRO_CHECK(!o.contains("type"), where, ": a dinov2 entry has no samapi \"type\"");
    const std::string precision = string_field(o, "precision", where);
    e->precision = precision.empty() ? fallback : precision_names().parse(precision, where + ": precision");
    return e;
  }
  e->type = string_field(o, "type", where);
  if (e->type.empty())
    e->type = e->model_type == "medsam" || e->model_type.empty() || e->kind == "glomsam" || e->kind == "gbmseg"
                  ? "vit_b"
                  : e->model_type;
  NEPHRO_CHECK(type_support(e->type) == TypeSupport::kServed, where, ": type \"", e->type,
               "\" is not served (", served_types_text(), ")");
  const std::string precision = string_field(o, "precision", where);
  e->precision = precision.empty() ? fallback : precision_names().parse(precision, where + ": precision");
  return e;
}

}  // namespace

std::vector<std::unique_ptr<ModelEntry>> read_weights_file(const std::string& path, Precision fallback) {
  std::ifstream in(path);
  NEPHRO_CHECK(in, "--weights ", path, ": cannot be read");
  nlohmann::json list = nlohmann::json::parse(in, nullptr, false);
  NEPHRO_CHECK(!list.is_discarded(), "--weights ", path, ": not valid JSON");
  NEPHRO_CHECK(list.is_array(), "--weights ", path, ": must be a JSON list of entries");
  const fs::path base = fs::absolute(path).parent_path();
  std::vector<std::unique_ptr<ModelEntry>> entries;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string where = "--weights " + path + " entry " + std::to_string(i);
    auto e = read_entry(list[i], where, base, fallback);
    for (const auto& other : entries)
      NEPHRO_CHECK(other->name != e->name, where, " (\"", e->name, "\"): the name is used twice");
    entries.push_back(std::move(e));
  }
  return entries;
}

std::vector<std::unique_ptr<ModelEntry>> scan_models_dir(const std::string& dir, Precision fallback) {
  NEPHRO_CHECK(fs::is_directory(dir), "--models ", dir, ": not a folder");
  std::vector<std::unique_ptr<ModelEntry>> entries;
  for (const auto& c : workloads::official_checkpoints()) {
    if (c.family != "sam" && c.family != "medsam" && c.family != "dinov2") continue;
    const fs::path file = fs::path(dir) / c.file;
    if (!fs::is_regular_file(file)) continue;
    auto e = std::make_unique<ModelEntry>();
    e->name = file.stem().string();
    e->kind = c.family;
    e->model_type = c.type;
    e->type = c.family == "medsam" ? "vit_b" : c.family == "dinov2" ? "" : c.type;
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

std::shared_ptr<const glomsam::GlomSamModel> load_glomsam(ModelEntry& entry) {
  std::lock_guard<std::mutex> lock(entry.load_mutex);
  if (entry.glomsam) return entry.glomsam;
  NEPHRO_CHECK(entry.kind == "glomsam", "model ", entry.name, ": kind ", entry.kind, " is not GlomSAM");
  glomsam::GlomSamConfig config = glomsam::GlomSamModel::config_for(entry.checkpoint, entry.glomsam_config);
  config.mask_threshold = entry.glomsam_threshold;  // as `glomsam predict --threshold`
  entry.glomsam = glomsam::GlomSamModel::load(entry.checkpoint, config, resolve_precision(entry.precision));
  return entry.glomsam;
}

namespace {

gbmseg::BackendSpec backend_spec(const char* kind, const ModelEntry::Backend& b, Precision precision) {
  gbmseg::BackendSpec spec;
  spec.kind = kind;
  spec.checkpoint = b.checkpoint;
  spec.model_type = b.model_type;
  spec.config_json = b.model_config;
  spec.precision = precision;
  return spec;
}

/// A reference mask as `nephroseg gbmseg` reads it: 8-bit with 1-4 channels kept raw
/// (the patch rule tests every channel), other depths binarised.
cv::Mat reference_mask(const std::string& path) {
  cv::Mat raw = io::read_image_raw(path);
  return raw.depth() == CV_8U && raw.channels() <= 4 ? raw : io::binarize_mask(raw);
}

}  // namespace

std::shared_ptr<const gbmseg::GbmSegPipeline> load_gbmseg(ModelEntry& entry) {
  std::lock_guard<std::mutex> lock(entry.load_mutex);
  if (entry.pipeline) return entry.pipeline;
  NEPHRO_CHECK(entry.kind == "gbmseg", "model ", entry.name, ": kind ", entry.kind, " is not GBMSeg");
  const Precision precision = resolve_precision(entry.precision);
  const workloads::GbmSegBatchOptions defaults;
  const gbmseg::PromptPreset preset =
      entry.preset.empty() ? defaults.preset : gbmseg::prompt_preset_names().parse(entry.preset, "preset");
  auto pipe = std::make_shared<gbmseg::GbmSegPipeline>(
      gbmseg::make_feature_extractor(backend_spec("dinov2", entry.dinov2, precision)),
      gbmseg::make_point_segmenter(backend_spec("sam", entry.sam, precision)), gbmseg::prompt_options_for(preset),
      defaults.pipeline);
  for (size_t i = 0; i < entry.reference_images.size(); ++i) {
    const cv::Mat image = io::read_image_rgb(entry.reference_images[i]);
    const cv::Mat mask = reference_mask(entry.reference_masks[i]);
    if (i == 0)
      pipe->set_reference(image, mask);
    else
      pipe->add_reference(image, mask);
  }
  entry.reference_computations.fetch_add(1);
  entry.pipeline = std::move(pipe);
  return entry.pipeline;
}

}  // namespace nephroseg::serve
