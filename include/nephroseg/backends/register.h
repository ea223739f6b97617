// nephroseg/backends/register.h: makes the weight-free backends available by name to
// gbmseg::make_feature_extractor / make_point_segmenter (model_backends.h), so that
// `nephroseg gbmseg --features classical --segmenter classical` and the demo build them
// like the model backends.
#pragma once

namespace nephroseg::backends {

/// Registers the kind "classical" for both factories (ClassicalFeatureExtractor and
/// ClassicalSegmenter with their default options; BackendSpec's checkpoint and model
/// fields are ignored). Idempotent and thread-safe; call it once at start-up (the CLI
/// does so from a static initialiser in tools/nephroseg/cmd_demo.cpp).
void register_classical_backends();

}  // namespace nephroseg::backends
