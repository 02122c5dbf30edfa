#include "api/client_call.h"

#include <utility>

#include "absl/time/clock.h"

namespace coremlz::api {

void PrepareCall(grpc::ClientContext* context, absl::Time deadline, const std::string& token) {
  if (deadline != absl::InfiniteFuture()) context->set_deadline(absl::ToChronoTime(deadline));
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
}

CallCanceller::CallCanceller(grpc::ClientContext* context, std::function<bool()> cancelled, absl::Duration poll) {
  if (!cancelled) return;
  watcher_ = std::thread([this, context, cancelled = std::move(cancelled), poll] {
    while (!finished_.load()) {
      if (cancelled()) {
        context->TryCancel();
        return;
      }
      absl::SleepFor(poll);
    }
  });
}

CallCanceller::~CallCanceller() {
  finished_.store(true);
  if (watcher_.joinable()) watcher_.join();
}

}  // namespace coremlz::api
