#include "nephroseg/backends/register.h"

#include <memory>
#include <mutex>

#include "nephroseg/backends/classical_features.h"
#include "nephroseg/backends/classical_segmenter.h"
#include "nephroseg/gbmseg/model_backends.h"

namespace nephroseg::backends {

void register_builtin_backends() {
  static std::once_flag once;
  std::call_once(once, [] {
    gbmseg::register_feature_extractor_kind("classical", [](const gbmseg::BackendSpec&) {
      return std::make_shared<ClassicalFeatureExtractor>();
    });
    gbmseg::register_point_segmenter_kind("classical", [](const gbmseg::BackendSpec&) {
      return std::make_shared<ClassicalSegmenter>();
    });
  });
}

void register_classical_backends() { register_builtin_backends(); }

}  // namespace nephroseg::backends
