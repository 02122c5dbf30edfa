#include "api/test_job_delay.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace coremlz::api {

absl::StatusOr<std::unique_ptr<engine::WorkerPool>> WithTestJobDelay(const Args& args, const ServerOptions& options,
                                                                     std::unique_ptr<engine::WorkerPool> pool,
                                                                     std::string* description) {
  ASSIGN_OR_RETURN(std::optional<int64_t> delay_ms, args.Int("test-job-delay-ms"));
  if (!delay_ms || *delay_ms <= 0) return pool;
  if (!pool) {
    engine::LocalWorkerPoolOptions po;
    po.threads = options.worker_threads;
    po.queue_capacity = options.queue_capacity;
    po.memory_budget = options.memory_budget;
    pool = engine::MakeLocalWorkerPool(po);
  }
  absl::StrAppend(description, ", test delay ", *delay_ms, " ms per weight");
  return engine::MakeDelayingWorkerPool(std::move(pool), absl::Milliseconds(*delay_ms));
}

}  // namespace coremlz::api
