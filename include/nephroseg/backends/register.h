// nephroseg/backends/register.h: the one place where the weight-free backends become
// available by name to gbmseg::make_feature_extractor / make_point_segmenter
// (model_backends.h), next to the built-in model kinds "dinov2" and "sam".
//
// The factory lives in gbmseg/, below this area, so it cannot name these backends
// itself; instead every entry point that builds backends by name calls
// register_builtin_backends() first: run_gbmseg_batch (gbmseg_batch.h), which both
// `nephroseg gbmseg --features classical` and the demo go through. (The demo's
// resolve_backends builds the classical backends directly.) Library users who call the
// factory directly call it once themselves.
#pragma once

namespace nephroseg::backends {

/// Registers the kind "classical" for both factories (ClassicalFeatureExtractor and
/// ClassicalSegmenter with their default options; BackendSpec's checkpoint and model
/// fields are ignored). Idempotent and thread-safe; cheap after the first call.
void register_builtin_backends();

/// The former name of register_builtin_backends (kept for source compatibility).
void register_classical_backends();

}  // namespace nephroseg::backends
