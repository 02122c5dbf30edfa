// The bounded queue in front of a worker pool's slots, written once for the
// local and the remote pools: who is admitted (room for the job, or a job
// that may wait for room until its admission deadline), which waiting job
// starts next (a free slot and, with a memory budget, the first job that
// fits), which waiting jobs are answered without running (cancelled, or
// still beyond capacity when their admission deadline passed), and shutdown
// (refuse new jobs, answer the waiting ones, give running ones a grace
// period, cancel the rest, wait for every one to finish).
//
// The pool owns the threads that run jobs: each takes a job with Take(),
// runs it, calls its `done` and then Finish(). The queue calls `done` itself
// only for jobs that never start.
#ifndef COREMLZ_ENGINE_JOB_QUEUE_H_
#define COREMLZ_ENGINE_JOB_QUEUE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/compress_job.h"

namespace coremlz::engine {

struct JobQueueOptions {
  int slots = 1;                 // jobs that may run at once (SetSlots changes it)
  int queue_capacity = 16;       // jobs that may wait beyond the free slots
  // Bytes that running jobs' memory_estimate may add up to; unset: memory
  // does not limit which job starts.
  std::optional<uint64_t> memory_budget;
  // Run on every job Submit() would otherwise admit, before the capacity
  // check (a job too large for the pool is refused even when there is room).
  std::function<absl::Status(const CompressJob&)> admissible;
  // The RESOURCE_EXHAUSTED message for a job refused for lack of room.
  std::function<std::string(int slots, size_t waiting)> busy_message;
  // The RESOURCE_EXHAUSTED message for a job whose admission deadline passed
  // while it waited.
  std::string expired_message = "the job queue stayed full until the call's deadline; retry later";
  // Whether the admission deadline also ends the wait of jobs that are
  // within capacity (that would have been admitted without waiting).
  bool expire_admitted_jobs = false;
  // How often waiting jobs are checked for cancellation and expiry.
  absl::Duration expiry_interval = absl::Milliseconds(100);
  // Metrics hook: called, outside the queue's lock, after the number of
  // running or waiting jobs changed.
  std::function<void(int running, int waiting)> on_change;
};

class JobQueue {
 public:
  explicit JobQueue(JobQueueOptions options);
  ~JobQueue();  // Shutdown(absl::ZeroDuration())
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  // Admits the job or says why not (and then never calls its `done`):
  // UNAVAILABLE while shutting down, `admissible`'s error, or
  // RESOURCE_EXHAUSTED when there is no room and the job may not wait.
  absl::Status Submit(CompressJob job);

  // Blocks until a waiting job may start, and returns it counted as running;
  // nullopt once the queue is shutting down.
  std::optional<CompressJob> Take();
  // A job from Take() has finished (its `done` was called). Returns whether
  // the queue is now idle: nothing running, nothing waiting.
  bool Finish(const CompressJob& job);

  // Changes the number of slots (a remote pool following its worker count).
  void SetSlots(int slots);

  // Lends an idle slot to a helper of a running job (one piece of a weight
  // on a worker thread no job is using): only while no job waits, running
  // jobs' threads and lent slots together leave a slot free, and `bytes` (what the
  // piece may hold) fit the memory budget. Jobs never wait for a lent slot:
  // one that arrives starts at once, unless it needs memory a lend holds;
  // then it waits, with nothing more lent meanwhile, until the helpers hand
  // their pieces back (EndLend(bytes, ran): `ran` false when the helper
  // found no piece left, so that lends() counts only lends put to work).
  bool TryLend(uint64_t bytes);
  void EndLend(uint64_t bytes, bool ran);
  int64_t lends() const;  // lent slots that ran a piece, so far

  int slots() const;
  int running() const;
  int waiting() const;

  // Refuses new jobs, answers waiting ones UNAVAILABLE, lets running ones
  // finish within `grace`, cancels the rest and waits until every running
  // job has called Finish(). Take() returns nullopt from the start.
  void Shutdown(absl::Duration grace);

 private:
  std::deque<CompressJob>::iterator StartableLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The expiry thread: answers waiting jobs that were cancelled or expired.
  void Expire();
  void NotifyChange();

  // Fixed after construction except `slots`, which lives in slots_ under
  // the lock (SetSlots changes it while jobs run).
  JobQueueOptions options_;
  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  int slots_ ABSL_GUARDED_BY(mu_);
  std::deque<CompressJob> waiting_ ABSL_GUARDED_BY(mu_);
  std::vector<JobControl*> running_controls_ ABSL_GUARDED_BY(mu_);
  uint64_t memory_in_use_ ABSL_GUARDED_BY(mu_) = 0;  // running jobs' estimates and lent bytes
  int running_threads_ ABSL_GUARDED_BY(mu_) = 0;  // running jobs' CompressJob::threads
  int lent_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t lends_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread expiry_;
};

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_JOB_QUEUE_H_
