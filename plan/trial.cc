#include "plan/trial.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace coremlz::plan {
namespace {

// The lowest-index failure among trials that run on several threads.
struct FirstError {
  absl::Mutex mu;
  absl::Status status ABSL_GUARDED_BY(mu);
  size_t index ABSL_GUARDED_BY(mu);
};

}  // namespace

absl::StatusOr<std::vector<TrialResult>> RunTrials(const TrialRunner& runner, const std::vector<Trial>& trials,
                                                   int threads, const std::function<bool()>& cancelled,
                                                   const std::function<void()>& on_done) {
  std::vector<TrialResult> results(trials.size());
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  FirstError first_error;
  {
    absl::MutexLock lock(&first_error.mu);
    first_error.index = trials.size();
  }
  auto work = [&]() {
    for (size_t i = next++; i < trials.size() && !failed; i = next++) {
      absl::StatusOr<TrialResult> r = (cancelled && cancelled()) ? absl::CancelledError("the plan was cancelled")
                                                                 : runner.Run(trials[i]);
      if (r.ok()) {
        results[i] = *std::move(r);
        if (on_done) on_done();
        continue;
      }
      absl::MutexLock lock(&first_error.mu);
      // The lowest failing index is reported, so the error too is independent of scheduling.
      if (i < first_error.index) {
        first_error.index = i;
        first_error.status = r.status();
      }
      failed = true;
    }
  };
  const int n = std::max(1, std::min<int>(threads, static_cast<int>(trials.size())));
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  absl::MutexLock lock(&first_error.mu);
  if (!first_error.status.ok()) return first_error.status;
  return results;
}

}  // namespace coremlz::plan
