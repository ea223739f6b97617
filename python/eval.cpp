// python/eval.cpp: segmentation metrics (the numbers `nephroseg eval` reports).
#include "common.h"
#include "nephroseg/eval/metrics.h"

namespace nephroseg::python {

void bind_eval(py::module_& m) {
  m.def(
      "metrics",
      [](const py::handle& pred, const py::handle& truth, double boundary_dilation_ratio) {
        const cv::Mat p = mask_arg(pred, "pred"), t = mask_arg(truth, "truth");
        if (p.size() != t.size())
          value_error("pred is " + std::to_string(p.rows) + "x" + std::to_string(p.cols) + " but truth is " +
                      std::to_string(t.rows) + "x" + std::to_string(t.cols) + " (HxW)");
        eval::MetricOptions o;
        o.boundary_dilation_ratio = boundary_dilation_ratio;
        eval::MaskMetrics r;
        {
          py::gil_scoped_release release;
          r = eval::compute_metrics(p, t, o);
        }
        py::dict d;
        for (const auto& name : eval::metric_names()) d[py::str(name)] = eval::metric_value(r, name);
        d["tp"] = r.tp;
        d["fp"] = r.fp;
        d["fn"] = r.fn;
        d["tn"] = r.tn;
        return d;
      },
      py::arg("pred"), py::arg("truth"), py::arg("boundary_dilation_ratio") = 0.02,
      "Dice, IoU, precision, recall, accuracy, HD95 (pixels), boundary IoU and the confusion\n"
      "counts of two HxW bool/uint8 masks (non-zero = foreground), as `nephroseg eval`.");
  m.def(
      "summarize",
      [](const std::vector<double>& values) {
        const eval::SummaryStats s = eval::summarize(values);
        py::dict d;
        d["n"] = s.n;
        d["n_nan"] = s.n_nan;
        d["mean"] = s.mean;
        d["sd"] = s.sd;
        d["median"] = s.median;
        d["q25"] = s.q25;
        d["q75"] = s.q75;
        d["iqr"] = s.iqr;
        d["min"] = s.min;
        d["max"] = s.max;
        return d;
      },
      py::arg("values"), "Summary statistics of a list of values (NaNs counted and left out).");
}

}  // namespace nephroseg::python
