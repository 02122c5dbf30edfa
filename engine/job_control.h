// Progress reporting and cancellation for long compression jobs. The engine
// checks Cancelled() between weights, and the kernels poll it (through a
// compress::CancelCheck) within a weight about every millisecond of work, so
// a cancelled or expired job stops within a fraction of a second whatever the
// size of the weight it is working on.
#ifndef COREMLZ_ENGINE_JOB_CONTROL_H_
#define COREMLZ_ENGINE_JOB_CONTROL_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "compress/cancel.h"

namespace coremlz::engine {

struct Progress {
  int weights_done = 0;
  int weights_total = 0;
  uint64_t bytes_done = 0;   // input weight bytes processed
  uint64_t bytes_total = 0;
  std::string current;       // weight being worked on
};

class JobControl {
 public:
  virtual ~JobControl() = default;
  // Called from the job's thread, often (about every millisecond of kernel
  // work): overrides must be cheap and thread-safe.
  virtual bool Cancelled() const {
    return cancelled_.load(std::memory_order_relaxed) || Expired();
  }
  virtual void OnProgress(const Progress& progress) {}
  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }

  // After `deadline` the job counts as cancelled and stops with
  // DEADLINE_EXCEEDED instead of CANCELLED.
  void SetDeadline(absl::Time deadline) {
    deadline_ns_.store(absl::ToUnixNanos(deadline), std::memory_order_relaxed);
  }
  bool Expired() const {
    const int64_t d = deadline_ns_.load(std::memory_order_relaxed);
    return d != kNoDeadline && absl::ToUnixNanos(absl::Now()) > d;
  }
  // The status of a job this control stopped.
  absl::Status StopStatus() const {
    if (Expired()) return absl::DeadlineExceededError("the job's deadline passed during compression");
    return absl::CancelledError("compression cancelled");
  }

  // A hook for the kernels, polling this control.
  compress::CancelCheck KernelCheck() const {
    return compress::CancelCheck([this] { return Cancelled(); });
  }

 private:
  static constexpr int64_t kNoDeadline = INT64_MAX;
  std::atomic<bool> cancelled_{false};
  std::atomic<int64_t> deadline_ns_{kNoDeadline};
};

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_JOB_CONTROL_H_
