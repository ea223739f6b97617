// nephroseg/measure/reference.h: published GBM thickness reference ranges.
//
// Thickness norms depend on method, age, sex and laboratory, so the range is a
// parameter. Each preset names its source (see docs/measure_eval_formats.md and
// the literature table it was taken from). A range classifies one value:
//   value < low  -> "thin";  value > high -> "thick";  otherwise "normal"
// (an absent bound is NaN). `method` says which of our estimates the range is
// compared with: kOrthogonalIntercept -> the stereological harmonic estimate
// (harmonic mean x 8/(3 pi)); kDirect -> the direct (medial-axis) arithmetic mean.
#pragma once

#include <string>
#include <vector>

#include "nephroseg/measure/thickness.h"

namespace nephroseg::measure {

struct ReferenceRange {
  std::string id;           ///< e.g. "haas2006-adult-male"
  std::string population;   ///< who it applies to
  Estimator method = Estimator::kDirect;
  double low_nm = 0;        ///< NaN = no lower bound
  double high_nm = 0;       ///< NaN = no upper bound
  double mean_nm = 0;       ///< NaN when the source gives only a cut-off
  double sd_nm = 0;
  std::string rule;         ///< how low/high were derived ("mean +- 2 SD", "cut-off")
  std::string source;       ///< citation
};

/// Every preset; the first one is the default.
const std::vector<ReferenceRange>& reference_ranges();
/// The default preset id ("adult-haas2006").
std::string default_reference_id();
/// Looks a preset up by id; throws nephroseg::Error listing the ids when unknown.
const ReferenceRange& find_reference_range(const std::string& id);
/// A user range: low/high in nm (NaN = open), compared with `method`.
ReferenceRange custom_reference_range(double low_nm, double high_nm, Estimator method);

/// "thin", "normal" or "thick" ("unknown" for NaN values).
std::string classify_thickness(double value_nm, const ReferenceRange& range);

}  // namespace nephroseg::measure
