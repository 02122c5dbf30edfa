// Whole selections (one candidate index per studied weight) measured by the
// executor with their decoded weights substituted: what the Pareto curve and
// the uniform comparisons report. No file is written, so there are no
// measured bytes, only output PSNR.
//
// The plan measures the same selection from several places (a uniform
// comparison's optimum is often a Pareto point too, and the comparisons run
// again after a re-admission), so each distinct selection is measured once
// and remembered. A study is read-only and each measurement depends only on
// its selection, so the batch runs on any number of threads with the same
// results.
#ifndef COREMLZ_PLAN_SELECTION_MEASUREMENTS_H_
#define COREMLZ_PLAN_SELECTION_MEASUREMENTS_H_

#include <functional>
#include <map>
#include <vector>

#include "absl/status/status.h"
#include "plan/model_study.h"
#include "plan/trial.h"

namespace coremlz::plan {

class SelectionMeasurements {
 public:
  // `cancelled` (optional) is polled between measurements.
  SelectionMeasurements(const ModelStudy& study, int threads, std::function<bool()> cancelled)
      : study_(study), threads_(threads), cancelled_(std::move(cancelled)) {}

  // Measures every selection not measured before, on up to `threads`
  // threads. CANCELLED when cancelled; else the first failure in order.
  absl::Status MeasureAll(const std::vector<std::vector<int>>& selections);

  // The lowest PSNR over outputs and samples of a selection MeasureAll
  // measured (NaN for one it did not).
  double WorstPsnrOf(const std::vector<int>& selection) const;

  int measured() const { return static_cast<int>(noise_.size()); }

 private:
  const ModelStudy& study_;
  const int threads_;
  const std::function<bool()> cancelled_;
  std::map<std::vector<int>, OutputNoise> noise_;
};

}  // namespace coremlz::plan

#endif  // COREMLZ_PLAN_SELECTION_MEASUREMENTS_H_
