#include "service/remote_worker_pool.h"

namespace coremlz::service {

absl::StatusOr<std::unique_ptr<engine::WorkerPool>> MakeRemoteWorkerPool(const RemoteWorkerPoolOptions&) {
  return absl::UnimplementedError("--remote-workers is not available in this build yet");
}

}  // namespace coremlz::service
