#include "nephroseg/measure/reference.h"

#include <cmath>
#include <limits>

#include "nephroseg/core/error.h"

namespace nephroseg::measure {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}

const std::vector<ReferenceRange>& reference_ranges() {
  static const std::vector<ReferenceRange> ranges = {
      {"adult-haas2006", "adults, sex not given (pooled Haas male/female limits)", Estimator::kDirect, 215, 430,
       kNaN, kNaN, "lowest female and highest male mean +- 2 SD (F 305 +- 45, M 330 +- 50)",
       "Haas, Arch Pathol Lab Med 2006;130:699-706 (direct measurement, 30 points per case)"},
      {"haas2006-adult-male", "adult men", Estimator::kDirect, 230, 430, 330, 50, "mean +- 2 SD",
       "Haas, Arch Pathol Lab Med 2006;130:699-706"},
      {"haas2006-adult-female", "adult women", Estimator::kDirect, 215, 395, 305, 45, "mean +- 2 SD",
       "Haas, Arch Pathol Lab Med 2006;130:699-706"},
      {"oi-harmonic-adult-2005", "adults, harmonic mean of 50 orthogonal intercepts",
       Estimator::kOrthogonalIntercept, 265, 377, 321, 28, "mean +- 2 SD (265 = TBMD cut-off)",
       "Indian J Pathol Microbiol 2005;48:453 (pubmed 16366093)"},
      {"viana2022-oi", "Brazilian adults, orthogonal intercept", Estimator::kOrthogonalIntercept, 191, 383, 287, 48,
       "mean +- 2 SD", "Viana et al., BMC Nephrol 2022 (doi 10.1186/s12882-021-02634-1)"},
      {"goel1995-thin", "thin GBM definition (harmonic mean)", Estimator::kOrthogonalIntercept, 320, kNaN, kNaN,
       kNaN, "cut-off: < 320 nm thin ('ultrathin' < 270 nm)", "Goel et al., QJM 1995"},
      {"tbm250", "thin basement membrane, widely used cut-off", Estimator::kDirect, 250, kNaN, kNaN, kNaN,
       "cut-off: < 250 nm thin", "EM chapter, barnardhealth.us (adult series M 373 +- 42, F 326 +- 45)"},
      {"tervaert2010-dn-female", "diabetic nephropathy class I threshold, women >= 9 y", Estimator::kDirect, kNaN,
       395, kNaN, kNaN, "cut-off: > 395 nm thick", "Tervaert et al., JASN 2010 (RPS classification, table 4)"},
      {"tervaert2010-dn-male", "diabetic nephropathy class I threshold, men >= 9 y", Estimator::kDirect, kNaN, 430,
       kNaN, kNaN, "cut-off: > 430 nm thick", "Tervaert et al., JASN 2010 (RPS classification, table 4)"},
  };
  return ranges;
}

std::string default_reference_id() { return reference_ranges().front().id; }

const ReferenceRange& find_reference_range(const std::string& id) {
  std::string known;
  for (const auto& r : reference_ranges()) {
    if (r.id == id) return r;
    known += (known.empty() ? "" : ", ") + r.id;
  }
  NEPHRO_FAIL("unknown reference range '", id, "' (known: ", known, ")");
}

ReferenceRange custom_reference_range(double low_nm, double high_nm, Estimator method) {
  NEPHRO_CHECK(!(std::isnan(low_nm) && std::isnan(high_nm)), "a custom reference range needs a low or a high bound");
  NEPHRO_CHECK(std::isnan(low_nm) || std::isnan(high_nm) || low_nm < high_nm, "reference range low (", low_nm,
               " nm) must be below high (", high_nm, " nm)");
  ReferenceRange r;
  r.id = "custom";
  r.population = "user supplied";
  r.method = method;
  r.low_nm = low_nm;
  r.high_nm = high_nm;
  r.mean_nm = r.sd_nm = kNaN;
  r.rule = "user supplied bounds";
  r.source = "user";
  return r;
}

std::string classify_thickness(double value_nm, const ReferenceRange& range) {
  if (std::isnan(value_nm)) return "unknown";
  if (!std::isnan(range.low_nm) && value_nm < range.low_nm) return "thin";
  if (!std::isnan(range.high_nm) && value_nm > range.high_nm) return "thick";
  return "normal";
}

}  // namespace nephroseg::measure
