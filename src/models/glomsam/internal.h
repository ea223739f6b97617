// src/models/glomsam/internal.h (internal): the typed torch module behind a
// GlomSamModel, for tests and benchmarks (the trainer has the narrower
// models/glomsam/trainer_access.h). Reach it through the
// nephroseg_internal CMake target (the train area has src/ on its own path); it is
// not part of the public include/ API.
//
//   auto model = glomsam::GlomSamModel::create(cfg);
//   models::glomsam::GlomSamImpl& net = glomsam::internal::module(*model);
//   net.freeze(true);
#pragma once

#include <memory>

#include "models/glomsam/glomsam.h"
#include "nephroseg/glomsam/glomsam.h"

namespace nephroseg::glomsam {

struct GlomSamModel::Impl {
  GlomSamConfig config;
  models::glomsam::GlomSam module{nullptr};
  Precision precision = Precision::kFp32;
};

/// The one door into GlomSamModel's internals (friend of GlomSamModel).
struct ModelAccess {
  static models::glomsam::GlomSam& holder(const GlomSamModel& model) {
    return model.impl_->module;
  }
};

namespace internal {

/// The model's GlomSamImpl (image_encoder, mask_decoder, prompt_encoder, UNet).
inline models::glomsam::GlomSamImpl& module(const GlomSamModel& model) {
  return *ModelAccess::holder(model);
}

/// The same module as a shared pointer (keeps it alive beyond the model).
inline std::shared_ptr<models::glomsam::GlomSamImpl> module_ptr(const GlomSamModel& model) {
  return ModelAccess::holder(model).ptr();
}

}  // namespace internal
}  // namespace nephroseg::glomsam
