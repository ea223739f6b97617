// src/models/dinov2/internal.h (internal): the typed torch module behind a
// Dinov2Model, for tests and benchmarks. Reach it through the nephroseg_internal
// CMake target; it is not part of the public include/ API.
//
//   auto model = dinov2::Dinov2Model::random(cfg);
//   dinov2::DinoVisionTransformerImpl& vit = dinov2::internal::module(*model);
#pragma once

#include "models/dinov2/vision_transformer.h"
#include "nephroseg/dinov2/dinov2.h"

namespace nephroseg::dinov2 {

struct Dinov2Model::Impl {
  DinoVisionTransformer vit{nullptr};
  Precision precision = Precision::kFp32;
};

/// The one door into Dinov2Model's internals (friend of Dinov2Model).
struct ModelAccess {
  static DinoVisionTransformer& holder(const Dinov2Model& model) { return model.impl_->vit; }
};

namespace internal {

/// The model's DinoVisionTransformer (blocks, norm, tokens, config).
inline DinoVisionTransformerImpl& module(const Dinov2Model& model) {
  return *ModelAccess::holder(model);
}

}  // namespace internal
}  // namespace nephroseg::dinov2
