#include "api/plan_fan_out.h"

#include <atomic>

namespace coremlz::api {
namespace {

// Counts what the runner it wraps does; cancellations are not failures.
class CountingRunner : public plan::TrialRunner {
 public:
  CountingRunner(const plan::TrialRunner& inner, ServerMetrics* metrics) : inner_(inner), metrics_(metrics) {}
  absl::StatusOr<plan::TrialResult> Run(const plan::Trial& trial) const override {
    absl::StatusOr<plan::TrialResult> r = inner_.Run(trial);
    if (metrics_ != nullptr) {
      if (r.ok()) metrics_->PlanTrials("measured", 1);
      else if (r.status().code() != absl::StatusCode::kCancelled) metrics_->PlanTrials("failed", 1);
    }
    return r;
  }

 private:
  const plan::TrialRunner& inner_;
  ServerMetrics* metrics_;
};

}  // namespace

plan::TrialFanOut LocalPlanFanOut(const PlanFanOutRequest& request) {
  return [threads = request.local_threads, cancelled = request.cancelled, metrics = request.metrics](
             const plan::TrialRunner& local, const std::vector<plan::Trial>& trials,
             const std::function<void()>& on_done) {
    CountingRunner counting(local, metrics);
    return plan::RunTrials(counting, trials, threads, cancelled, on_done);
  };
}

}  // namespace coremlz::api
