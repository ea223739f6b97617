// src/models/sam/internal.h (internal): the typed torch module behind a SamModel, for
// tests and benchmarks that time or compare single stages. Reach it through the
// nephroseg_internal CMake target; it is not part of the public include/ API.
//
//   const auto model = sam::SamModel::random(cfg);
//   sam::SamImpl& net = sam::internal::module(*model);
//   net.image_encoder->forward(x);
#pragma once

#include "models/sam/predictor.h"
#include "models/sam/sam.h"
#include "nephroseg/sam/sam.h"

namespace nephroseg::sam {

struct SamModel::Impl {
  Sam sam{nullptr};
  Precision precision = Precision::kFp32;
};

/// The one door into SamModel's internals (friend of SamModel).
struct ModelAccess {
  static Sam& holder(const SamModel& model) { return model.impl_->sam; }
};

namespace internal {

/// The model's module (image_encoder, prompt_encoder, mask_decoder, config).
inline SamImpl& module(const SamModel& model) { return *ModelAccess::holder(model); }

}  // namespace internal
}  // namespace nephroseg::sam
