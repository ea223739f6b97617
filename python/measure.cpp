// python/measure.cpp: GBM thickness (the numbers `nephroseg measure` writes, in nm).
#include <opencv2/core.hpp>

#include <cmath>

#include "common.h"
#include "nephroseg/core/error.h"
#include "nephroseg/measure/reference.h"
#include "nephroseg/measure/report.h"
#include "nephroseg/measure/thickness.h"

namespace nephroseg::python {

void bind_measure(py::module_& m) {
  const measure::ThicknessOptions d;  // the keyword defaults are the library's
  m.def(
      "measure_thickness",
      [](const py::handle& mask, double nm_per_pixel, double sample_spacing_px, uint64_t seed,
         double smoothing_sigma_px, double max_angle_deg, double max_chord_px, double tangential_factor,
         int local_window, double border_margin_px, double spur_length_factor, const std::string& reference,
         const std::string& name) {
        if (!(nm_per_pixel > 0) || !std::isfinite(nm_per_pixel))
          value_error("nm_per_pixel must be a positive, finite number of nm per pixel");
        const cv::Mat m8 = mask_arg(mask, "mask");
        NEPHRO_CHECK(cv::countNonZero(m8) > 0, "mask is empty (no foreground pixel)");
        measure::ThicknessOptions o;
        o.nm_per_pixel = nm_per_pixel;
        o.sample_spacing_px = sample_spacing_px;
        o.seed = seed;
        o.smoothing_sigma_px = smoothing_sigma_px;
        o.max_angle_deg = max_angle_deg;
        o.max_chord_px = max_chord_px;
        o.tangential_factor = tangential_factor;
        o.local_window = local_window;
        o.border_margin_px = border_margin_px;
        o.spur_length_factor = spur_length_factor;
        const measure::ReferenceRange& range =
            measure::find_reference_range(reference.empty() ? measure::default_reference_id() : reference);
        measure::ThicknessResult r;
        {
          py::gil_scoped_release release;
          r = measure::measure_thickness(m8, o);
        }
        py::dict d = json_loads(measure::thickness_summary_json(name, r, range, o)).cast<py::dict>();
        // Every chord / diameter, for plots: positions in pixels, widths in nm.
        const auto n = static_cast<py::ssize_t>(r.measurements.size());
        py::array_t<double> x(n), y(n), width_nm(n);
        py::array_t<bool> excluded(n);
        py::list estimator, reason;
        for (py::ssize_t i = 0; i < n; ++i) {
          const auto& s = r.measurements[static_cast<size_t>(i)];
          x.mutable_data()[i] = s.position.x;
          y.mutable_data()[i] = s.position.y;
          width_nm.mutable_data()[i] = s.width_px * r.nm_per_pixel;
          excluded.mutable_data()[i] = s.excluded;
          estimator.append(measure::estimator_name(s.estimator));
          reason.append(s.reason);
        }
        py::dict ms;
        ms["x"] = x;
        ms["y"] = y;
        ms["width_nm"] = width_nm;
        ms["excluded"] = excluded;
        ms["estimator"] = estimator;
        ms["reason"] = reason;
        d["measurements"] = ms;
        return d;
      },
      py::arg("mask"), py::arg("nm_per_pixel"), py::kw_only(), py::arg("sample_spacing_px") = d.sample_spacing_px,
      py::arg("seed") = d.seed, py::arg("smoothing_sigma_px") = d.smoothing_sigma_px,
      py::arg("max_angle_deg") = d.max_angle_deg, py::arg("max_chord_px") = d.max_chord_px,
      py::arg("tangential_factor") = d.tangential_factor, py::arg("local_window") = d.local_window,
      py::arg("border_margin_px") = d.border_margin_px, py::arg("spur_length_factor") = d.spur_length_factor, py::arg("reference") = "",
      py::arg("name") = "mask",
      "GBM thickness of a HxW bool/uint8 membrane mask (non-zero = membrane). Returns the dict\n"
      "`nephroseg measure` writes as <name>_summary.json (orthogonal-intercept and direct\n"
      "estimators, in nm, classified against the reference range `reference`, default the\n"
      "CLI's) plus 'measurements': numpy arrays x, y (pixels), width_nm, excluded, and lists\n"
      "estimator, reason, one entry per chord / skeleton point.");
  m.def(
      "thickness_reference_ranges",
      [] {
        py::list out;
        for (const auto& r : measure::reference_ranges()) {
          py::dict d;
          d["id"] = r.id;
          d["population"] = r.population;
          d["method"] = measure::estimator_name(r.method);
          d["low_nm"] = r.low_nm;
          d["high_nm"] = r.high_nm;
          d["source"] = r.source;
          out.append(d);
        }
        return out;
      },
      "The published GBM thickness reference ranges measure_thickness(reference=id) knows.");
}

}  // namespace nephroseg::python
