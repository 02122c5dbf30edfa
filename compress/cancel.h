// Cooperative cancellation for long kernels. A kernel charges the work it
// does (roughly one unit per element operation: a distance term, a DP
// candidate, a comparison) and the caller's hook is consulted once per
// kPollInterval units, so the time between two polls is bounded by the
// interval, not by the tensor's size. The hook is a plain function: the
// kernels know nothing of jobs, deadlines or RPCs.
#ifndef COREMLZ_COMPRESS_CANCEL_H_
#define COREMLZ_COMPRESS_CANCEL_H_

#include <cstdint>
#include <functional>
#include <utility>

#include "absl/status/status.h"

namespace coremlz::compress {

class CancelCheck {
 public:
  // 2^20 units are about a millisecond of kernel work on the development
  // machine: far below the one-second promise, and rare enough that a poll
  // (a virtual call, an atomic load, a clock read) costs nothing measurable.
  static constexpr int64_t kPollInterval = int64_t{1} << 20;

  CancelCheck() = default;  // never cancels
  explicit CancelCheck(std::function<bool()> cancelled) : hook_(std::move(cancelled)) {}

  // Charges `work` units; polls when the budget is spent. True once the hook
  // has said so (and from then on).
  bool Charge(int64_t work) {
    budget_ -= work;
    return budget_ <= 0 && Poll();
  }

  // Polls now.
  bool Poll() {
    if (!cancelled_ && hook_) cancelled_ = hook_();
    // Once cancelled, every later charge says so at once.
    budget_ = cancelled_ ? 0 : kPollInterval;
    return cancelled_;
  }

  bool cancelled() const { return cancelled_; }

  // A check with the same hook, for one piece of a kernel call that runs
  // pieces on several threads at once (a check is not shared between
  // threads; the hook must be safe to call from them all). It polls at its
  // first charge: a fresh budget per piece would let a call of many small
  // pieces run to the end without a single poll.
  CancelCheck Fork() const {
    CancelCheck fork(hook_);
    fork.cancelled_ = cancelled_;
    fork.budget_ = 0;
    return fork;
  }

 private:
  std::function<bool()> hook_;
  int64_t budget_ = kPollInterval;
  bool cancelled_ = false;
};

// What a kernel returns when its hook stopped it. Callers with more context
// (the job's deadline) replace it with their own status.
inline absl::Status CancelledStatus() { return absl::CancelledError("stopped: the job was cancelled"); }

// For kernels whose hook is optional.
inline bool Stopped(CancelCheck* cancel, int64_t work) { return cancel != nullptr && cancel->Charge(work); }

}  // namespace coremlz::compress

#endif  // COREMLZ_COMPRESS_CANCEL_H_
