// A WorkerPool whose jobs run on coremlz-worker processes, for when compute
// scales separately from the fronts (Kubernetes: a headless Service of
// workers, dialled as dns:///name:port).
//
// One gRPC channel with the round_robin policy spreads calls over every
// resolved worker; at most per_worker_concurrency jobs per worker run at
// once, more wait in the queue. A job is streamed from the front's job
// directory to a worker and the answer is received into a staging directory,
// committed only when every file passed its size and SHA-256 check - nothing
// half-written is ever returned.
//
// Failover rule: a front keeps every upload it accepted on its local disk
// until the call ends (bounded by --max-upload-mb), so a job whose worker
// dies or is unreachable (UNAVAILABLE, a broken stream, RESOURCE_EXHAUSTED)
// is sent again, to another worker, up to max_attempts times within the
// caller's deadline; after that the call fails UNAVAILABLE naming the
// attempts. Errors about the model itself (INVALID_ARGUMENT, ...) are not
// retried.
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
  int max_attempts = 3;
  std::string work_dir;
};

absl::StatusOr<std::unique_ptr<engine::WorkerPool>> MakeRemoteWorkerPool(const RemoteWorkerPoolOptions& options);

}  // namespace coremlz::service

#endif  // COREMLZ_SERVICE_REMOTE_WORKER_POOL_H_
