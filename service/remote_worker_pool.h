// A WorkerPool whose jobs run on coremlz-worker processes (workers/), for
// when compute scales separately from the front. Defined in issue 6's work.
#ifndef COREMLZ_SERVICE_REMOTE_WORKER_POOL_H_
#define COREMLZ_SERVICE_REMOTE_WORKER_POOL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "api/credentials.h"
#include "engine/worker_pool.h"

namespace coremlz::service {

struct RemoteWorkerPoolOptions {
  std::string target;  // "dns:///name:port" or "host:port,host:port"
  api::TlsFiles tls;
  std::string token;
  int per_worker_concurrency = 2;
  int queue_capacity = 16;
  std::string work_dir;
};

absl::StatusOr<std::unique_ptr<engine::WorkerPool>> MakeRemoteWorkerPool(const RemoteWorkerPoolOptions& options);

}  // namespace coremlz::service

#endif  // COREMLZ_SERVICE_REMOTE_WORKER_POOL_H_
