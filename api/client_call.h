// What every coremlz client call carries - its deadline and the bearer token
// coremlz servers, workers and runners check - and the watcher that cancels
// a call when the job behind it is cancelled (Ctrl-C in the CLI, a caller
// gone on the front).
#ifndef COREMLZ_API_CLIENT_CALL_H_
#define COREMLZ_API_CLIENT_CALL_H_

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace coremlz::api {

// Sets the deadline (none when infinite) and, when `token` is not empty, the
// "authorization: Bearer <token>" header (api/credentials.h TokenAuth).
void PrepareCall(grpc::ClientContext* context, absl::Time deadline, const std::string& token);

// Cancels `context` as soon as `cancelled()` returns true (checked every
// `poll`), until destroyed: declare it after the context, and destroy it
// once the call has finished. Without a `cancelled` function it does nothing.
class CallCanceller {
 public:
  CallCanceller(grpc::ClientContext* context, std::function<bool()> cancelled, absl::Duration poll);
  ~CallCanceller();
  CallCanceller(const CallCanceller&) = delete;
  CallCanceller& operator=(const CallCanceller&) = delete;

 private:
  std::atomic<bool> finished_{false};
  std::thread watcher_;
};

}  // namespace coremlz::api

#endif  // COREMLZ_API_CLIENT_CALL_H_
