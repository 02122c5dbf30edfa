// One unit of sensitivity measurement: the model with one weight compressed
// by one candidate, run on the study's samples. Trials are independent and
// each result depends only on its trial, so they can run in any order, on
// any thread or (later) any worker, and give the same plan.
#ifndef COREMLZ_PLAN_TRIAL_H_
#define COREMLZ_PLAN_TRIAL_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"

namespace coremlz::plan {

struct Trial {
  int weight = 0;     // index into the study's weights
  int candidate = 0;  // index into its candidates
};

// The outputs' noise power relative to the original's peak, one entry per
// (sample, output) in sample-major order: mse / max(reference^2), so that
// 10 log10(1 / noise) is execute/compare's PSNR of that output and sample.
using OutputNoise = std::vector<double>;

struct TrialResult {
  uint64_t bytes = 0;  // the weight's stored bytes under the candidate
  OutputNoise noise;
};

class TrialRunner {
 public:
  virtual ~TrialRunner() = default;
  virtual absl::StatusOr<TrialResult> Run(const Trial& trial) const = 0;
};

// Runs every trial on a fixed pool of `threads` threads; results are in the
// order of `trials` whatever the thread count. `cancelled` (optional) is
// polled between trials; `on_done` (optional) is called, from the thread
// that ran it, after each trial that succeeded. On errors the pool stops
// taking trials and returns the error of the lowest-numbered trial that
// failed.
absl::StatusOr<std::vector<TrialResult>> RunTrials(const TrialRunner& runner, const std::vector<Trial>& trials,
                                                   int threads, const std::function<bool()>& cancelled = nullptr,
                                                   const std::function<void()>& on_done = nullptr);

// Where a plan's trials run. The default is RunTrials over `local` on the
// study's threads; the Plan RPC substitutes one that also sends trials to
// remote workers (which build the same study and so compute the same
// results). Whatever runs them, results come back in the order of `trials`
// and `on_done` is called once per finished trial.
using TrialFanOut = std::function<absl::StatusOr<std::vector<TrialResult>>(
    const TrialRunner& local, const std::vector<Trial>& trials, const std::function<void()>& on_done)>;

}  // namespace coremlz::plan

#endif  // COREMLZ_PLAN_TRIAL_H_
