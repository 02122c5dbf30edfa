// One unit of work for a worker pool: a model to compress (or a task run in
// its place), with the limits it is admitted under and where its result goes.
#ifndef COREMLZ_ENGINE_COMPRESS_JOB_H_
#define COREMLZ_ENGINE_COMPRESS_JOB_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/arriving_input.h"
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
  // Threads the job keeps busy while it runs in its one slot (a Plan's
  // study uses several): the queue lends idle slots to other jobs' helpers
  // only beyond them.
  int threads = 1;
  // While the queue is full, wait for a slot until this time (then
  // RESOURCE_EXHAUSTED); unset: refuse at once.
  std::optional<absl::Time> admission_deadline;
  // The caller's deadline (remote pools pass it on to the worker's call).
  absl::Time deadline = absl::InfiniteFuture();
  std::shared_ptr<JobControl> control;  // progress, cancellation (required)
  // Set when the job starts before its upload is complete: the input is read
  // as it arrives (only pools whose reads_arriving_input() is true get one).
  std::shared_ptr<ArrivingInput> arriving;
  // When set, the pool runs this instead of compressing (Inspect: the same
  // admission, budget, queue and cancellation as a compression); `done`
  // then gets an empty report or the task's error. Remote pools run it in
  // the front's process, on their own slots.
  std::function<absl::Status(JobControl*)> task;
  // Run after a successful compression, on the same worker and under the
  // same control (the output check, which the service fills in: the engine
  // does not run models).
  std::function<void(CompressionReport*, JobControl*)> after;
  // Called exactly once, from a pool thread, unless Submit() fails.
  std::function<void(absl::StatusOr<CompressionReport>)> done;
};

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_COMPRESS_JOB_H_
