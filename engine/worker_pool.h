// Where compression jobs run. One interface, two implementations: threads in
// this process (the embedded default, below) and remote coremlz-worker
// processes (service/remote_worker_pool.h) when compute scales separately.
// Both admit, queue, expire and shut down jobs through one JobQueue.
#ifndef COREMLZ_ENGINE_WORKER_POOL_H_
#define COREMLZ_ENGINE_WORKER_POOL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/compress_job.h"
#include "format/package.h"

namespace coremlz::engine {

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
  // Times a worker slot no job was using was lent to a running job's
  // helper (for one palette group of a grouped palettization), so far.
  virtual int64_t slots_lent() const { return 0; }
  // Whether a job of this estimate could ever run here (the memory budget);
  // lets a caller refuse a model before the rest of its upload arrives.
  virtual absl::Status CheckMemory(uint64_t memory_estimate) const { return absl::OkStatus(); }
  // Whether a job may be submitted before its input is complete (with
  // CompressJob::arriving): threads in this process read the upload's files
  // as they arrive; remote workers need the complete upload.
  virtual bool reads_arriving_input() const { return false; }
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

// Estimates of a job's peak memory, made from the model spec before any
// weight is read. The model (docs/reliability.md, "Hostile use"):
//
//   kJobBaseBytes                          allocator, staging, I/O buffers
// + kBytesPerElement x the largest tensor  weights are processed one at a time:
//                                          float32 values, reconstruction, sort
//                                          copy, indices, packed output;
//                                          constexpr outputs count at their
//                                          dense size (Inspect decodes them)
// + kBytesPerSpecByte x spec bytes         the file, its rewrite, and inline
//                                          values once parsed, twice over
// + kBytesPerOp x ops                      parsed operations (maps, names,
//                                          types), held by the package and by
//                                          the compressor's copy
//
// Every block of every function counts, nested `cond`/`while_loop` bodies
// included. kBytesPerOp is measured: 1e6 one-input ops (87 bytes each
// serialized) peak at 4.3 KB per op compressing and 2.1 KB inspecting
// (tests/engine/memory_estimate_test). A NeuralNetwork is held whole: its
// spec bytes several times over.
inline constexpr uint64_t kJobBaseBytes = uint64_t{32} << 20;
inline constexpr uint64_t kBytesPerElement = 20;
inline constexpr uint64_t kBytesPerSpecByte = 6;
inline constexpr uint64_t kBytesPerOp = 4608;

// Sizes of the files a program's blobs live in, by package-relative path.
using FileSizeFn = std::function<absl::StatusOr<uint64_t>(const std::string& relative)>;

// `model_path`: an .mlpackage directory or an .mlmodel file, complete.
absl::StatusOr<uint64_t> EstimateJobMemory(const std::string& model_path,
                                           uint64_t max_manifest_bytes = format::kDefaultMaxManifestBytes);

// During an upload: `package_dir` holds Manifest.json and the model spec;
// weight files need not have arrived, their sizes come from `declared`.
absl::StatusOr<uint64_t> EstimateUploadMemory(const std::string& package_dir, const FileSizeFn& declared,
                                              uint64_t max_manifest_bytes = format::kDefaultMaxManifestBytes);

// The least a model spec of `spec_bytes` costs once parsed (no op counted):
// a spec that cannot fit is refused without parsing it.
inline uint64_t MinimumSpecMemory(uint64_t spec_bytes) {
  return kJobBaseBytes + spec_bytes * kBytesPerSpecByte;
}

// A NeuralNetwork .mlmodel of `size` bytes (held whole, plus one layer's
// decoded floats): known from an upload's header alone.
inline uint64_t EstimateModelFileMemory(uint64_t size) { return MinimumSpecMemory(size) + size * 2; }

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_WORKER_POOL_H_
