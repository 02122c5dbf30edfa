// A one-shot timer for a call, on gRPC's own timer (no thread of ours).
// Re-arming replaces the alarm instead of setting it again: a grpc::Alarm
// must not be Set from inside its own callback, which is where a call's
// checks re-arm themselves. The callback runs with `fired` false when the
// timer is replaced or destroyed first, so it must own what it touches (a
// reactor's shared state, never the reactor itself).
#ifndef COREMLZ_API_CALL_TIMER_H_
#define COREMLZ_API_CALL_TIMER_H_

#include <functional>
#include <memory>

#include "absl/time/time.h"
#include "grpcpp/alarm.h"

namespace coremlz::api {

class CallTimer {
 public:
  void Arm(absl::Time when, std::function<void(bool fired)> callback) {
    alarm_ = std::make_unique<grpc::Alarm>();
    alarm_->Set(absl::ToChronoTime(when), std::move(callback));
  }
  void Stop() { alarm_.reset(); }

 private:
  std::unique_ptr<grpc::Alarm> alarm_;
};

}  // namespace coremlz::api

#endif  // COREMLZ_API_CALL_TIMER_H_
