// Where compression jobs run. One interface, two implementations: threads in
// this process (the embedded default, below) and remote coremlz-worker
// processes (workers/remote_worker_pool.h) when compute scales separately.
#ifndef COREMLZ_ENGINE_WORKER_POOL_H_
#define COREMLZ_ENGINE_WORKER_POOL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/config.h"
#include "engine/job_control.h"
#include "engine/ml_program_compressor.h"
#include "engine/report.h"

namespace coremlz::engine {

struct CompressJob {
  std::string input_path;   // .mlpackage directory or .mlmodel file
  std::string output_path;  // where the compressed model goes (same form)
  CompressionConfig config;
  CompressOptions options;
  uint64_t memory_estimate = 0;  // peak bytes the job may need
  // While the queue is full, wait for a slot until this time (then
  // RESOURCE_EXHAUSTED); unset: refuse at once.
  std::optional<absl::Time> admission_deadline;
  // The caller's deadline (remote pools pass it on to the worker's call).
  absl::Time deadline = absl::InfiniteFuture();
  std::shared_ptr<JobControl> control;  // progress, cancellation (required)
  // Called exactly once, from a pool thread, unless Submit() fails.
  std::function<void(absl::StatusOr<CompressionReport>)> done;
};

class WorkerPool {
 public:
  virtual ~WorkerPool() = default;
  // Fails at once (and never calls `done`) if the pool is shutting down, the
  // queue is full and the job may not wait, or the job can never fit the
  // memory budget. Errors say which limit and how to retry.
  virtual absl::Status Submit(CompressJob job) = 0;
  virtual int busy() const = 0;         // jobs running
  virtual int queue_depth() const = 0;  // jobs waiting
  virtual int threads() const = 0;
  // Refuses new jobs, lets running ones finish within `grace`, cancels what
  // is left and waits for every `done` to have been called.
  virtual void Shutdown(absl::Duration grace) = 0;
};

struct LocalWorkerPoolOptions {
  int threads = 0;               // 0: one per core
  int queue_capacity = 16;       // jobs waiting beyond the running ones
  uint64_t memory_budget = 0;    // bytes for jobs in flight; 0: half the machine's memory
};

std::unique_ptr<WorkerPool> MakeLocalWorkerPool(const LocalWorkerPoolOptions& options);

// Test knob (coremlzd --test-job-delay-ms): makes every weight of every job
// take `delay` longer, so that tests can cancel, kill or drain mid-job.
std::unique_ptr<WorkerPool> MakeDelayingWorkerPool(std::unique_ptr<WorkerPool> inner, absl::Duration delay);

// A generous estimate of a job's peak memory: the largest tensor's dense
// floats several times over (values, reconstruction, sorting, output
// buffers), plus the model spec; a NeuralNetwork is held whole.
absl::StatusOr<uint64_t> EstimateJobMemory(const std::string& model_path);

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_WORKER_POOL_H_
