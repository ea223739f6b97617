// serve/registry.h (internal): the server's model entries (see server.h for the
// weights-file format) and the samapi types.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "nephroseg/core/precision.h"

namespace nephroseg::sam {
class SamModel;
}
namespace nephroseg::glomsam {
class GlomSamModel;
}
namespace nephroseg::gbmseg {
class GbmSegPipeline;
}

namespace nephroseg::serve {

/// What a samapi `type` means here: served (vit_b/l/h), known but not supported
/// (vit_t, sam2_*, sam3: the server answers 501), or unknown (400).
enum class TypeSupport { kServed, kNotSupported, kUnknown };
TypeSupport type_support(const std::string& type);
/// "vit_b, vit_l, vit_h" (for messages).
std::string served_types_text();

struct ModelEntry {
  std::string name;
  std::string kind = "sam";  // "sam" | "medsam" | "glomsam" | "gbmseg" | "dinov2" (workbench only)
  std::string type;          // samapi type
  std::string checkpoint;
  std::string model_type;    // SamConfig preset
  std::string model_config;  // SamConfig JSON path (wins over model_type)
  Precision precision = Precision::kAuto;
  // glomsam: "config" as `glomsam predict --config` (auto | official | tiny | JSON).
  std::string glomsam_config = "auto";
  double glomsam_threshold = 0.5;  // "threshold": set from GlomSamPredictOptions::threshold
  // gbmseg: the two models ({checkpoint, model_type | model_config}), the references
  // (pairs, pooled when several) and the prompt preset name.
  struct Backend {
    std::string checkpoint, model_type, model_config;
  };
  Backend dinov2, sam;
  std::vector<std::string> reference_images, reference_masks;
  std::string preset;  // "" = gbmseg's default (GbmSegBatchOptions::preset)
  std::string url() const { return "nephroseg:" + name; }

  // Runtime state.
  std::mutex load_mutex;
  std::shared_ptr<const sam::SamModel> model;  // loaded on first use, kept
  std::shared_ptr<const glomsam::GlomSamModel> glomsam;    // kind glomsam, same
  std::shared_ptr<const gbmseg::GbmSegPipeline> pipeline;  // kind gbmseg: reference set
  std::atomic<int64_t> reference_computations{0};          // gbmseg pipelines built
  std::mutex run_mutex;                        // one request at a time runs
  std::atomic<int> in_flight{0};               // running + waiting
};

/// Entries of a weights JSON file (relative paths against its folder). Throws
/// nephroseg::Error naming the file and the entry.
std::vector<std::unique_ptr<ModelEntry>> read_weights_file(const std::string& path, Precision fallback);
/// Entries for the official SAM / MedSAM files in `dir` (workloads/model_files.h).
std::vector<std::unique_ptr<ModelEntry>> scan_models_dir(const std::string& dir, Precision fallback);
/// Loads the entry's SamModel once (thread-safe); throws nephroseg::Error.
std::shared_ptr<const sam::SamModel> load_entry(ModelEntry& entry);
/// Kind glomsam: the model once, its config as `glomsam predict` resolves it
/// (GlomSamModel::config_for, then the predict threshold's default).
std::shared_ptr<const glomsam::GlomSamModel> load_glomsam(ModelEntry& entry);
/// Kind gbmseg: both models and the references' features once (GbmSegPipeline with
/// the preset's prompt options); counts reference_computations.
std::shared_ptr<const gbmseg::GbmSegPipeline> load_gbmseg(ModelEntry& entry);

}  // namespace nephroseg::serve
