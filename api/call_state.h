// What a streaming call's reactor shares with the work running for it on
// other threads (jobs, progress, gRPC's timers): one mutex that guards the
// whole call, and the reactor while the call lives (null once gRPC is done
// with it, so a late callback finds nothing to touch). Compress, Plan and
// Inspect each keep theirs in a shared_ptr that every callback holds.
#ifndef COREMLZ_API_CALL_STATE_H_
#define COREMLZ_API_CALL_STATE_H_

#include <functional>
#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace coremlz::api {

// What the reactor and the work running for it on other threads share.
template <typename Reactor>
struct CallState {
  absl::Mutex mu;
  Reactor* reactor ABSL_GUARDED_BY(mu) = nullptr;  // null once the call is over
};

// The stall timer's callback for a call with this state: checks the call
// again if it is still live (its CheckStallLocked re-arms the timer).
template <typename Reactor>
std::function<void()> StallRecheck(std::shared_ptr<CallState<Reactor>> state) {
  return [state = std::move(state)] {
    absl::MutexLock lock(&state->mu);
    if (Reactor* r = state->reactor) {
      r->AssertHeld();
      r->CheckStallLocked();
    }
  };
}

}  // namespace coremlz::api

#endif  // COREMLZ_API_CALL_STATE_H_
