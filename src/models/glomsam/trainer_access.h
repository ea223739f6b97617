// src/models/glomsam/trainer_access.h (internal): what the GlomSAM trainer
// (src/train/trainer.cpp) needs of a GlomSamModel, and no more: its typed torch
// module, to train in place. Unlike models/glomsam/internal.h it does not expose
// GlomSamModel::Impl.
#pragma once

#include <memory>

#include "models/glomsam/glomsam.h"

namespace nephroseg::glomsam {

class GlomSamModel;

namespace trainer_access {

/// The model's GlomSamImpl as a shared pointer (keeps it alive beyond the model).
/// Training it changes the model's weights.
std::shared_ptr<models::glomsam::GlomSamImpl> module_of(const GlomSamModel& model);

}  // namespace trainer_access
}  // namespace nephroseg::glomsam
