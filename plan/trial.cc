#include "plan/trial.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

namespace coremlz::plan {

absl::StatusOr<std::vector<TrialResult>> RunTrials(const TrialRunner& runner, const std::vector<Trial>& trials,
                                                   int threads, const std::function<bool()>& cancelled) {
  std::vector<TrialResult> results(trials.size());
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  absl::Status first_error;
  size_t first_error_index = trials.size();
  auto work = [&]() {
    for (size_t i = next++; i < trials.size() && !failed; i = next++) {
      absl::StatusOr<TrialResult> r = (cancelled && cancelled()) ? absl::CancelledError("the plan was cancelled")
                                                                 : runner.Run(trials[i]);
      if (r.ok()) {
        results[i] = *std::move(r);
        continue;
      }
      std::lock_guard<std::mutex> lock(mu);
      // The lowest failing index is reported, so the error too is independent of scheduling.
      if (i < first_error_index) {
        first_error_index = i;
        first_error = r.status();
      }
      failed = true;
    }
  };
  const int n = std::max(1, std::min<int>(threads, static_cast<int>(trials.size())));
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  if (!first_error.ok()) return first_error;
  return results;
}

}  // namespace coremlz::plan
