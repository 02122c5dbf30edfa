#include "engine/job_queue.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace coremlz::engine {

JobQueue::JobQueue(JobQueueOptions options) : options_(std::move(options)), slots_(options_.slots) {
  if (!options_.busy_message) {
    options_.busy_message = [](int slots, size_t waiting) {
      return absl::StrCat("all ", slots, " slots are busy and ", waiting, " jobs are queued; retry in a few seconds");
    };
  }
  expiry_ = std::thread([this] { Expire(); });
}

JobQueue::~JobQueue() { Shutdown(absl::ZeroDuration()); }

absl::Status JobQueue::Submit(CompressJob job) {
  if (!job.control || !job.done) return absl::InvalidArgumentError("a job needs a control and a done callback");
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::UnavailableError("the server is shutting down; retry on another replica");
    if (options_.admissible) RETURN_IF_ERROR(options_.admissible(job));
    // Room: a free slot, or a free place in the queue behind the busy ones.
    const int running = static_cast<int>(running_controls_.size());
    const size_t room = static_cast<size_t>(std::max(0, slots_ - running)) + options_.queue_capacity;
    if (waiting_.size() >= room && !job.admission_deadline) {
      return absl::ResourceExhaustedError(options_.busy_message(slots_, waiting_.size()));
    }
    waiting_.push_back(std::move(job));
  }
  cv_.SignalAll();
  NotifyChange();
  return absl::OkStatus();
}

std::optional<CompressJob> JobQueue::Take() {
  std::optional<CompressJob> job;
  {
    absl::MutexLock lock(&mu_);
    while (!stopping_ && StartableLocked() == waiting_.end()) cv_.Wait(&mu_);
    if (stopping_) return std::nullopt;
    auto it = StartableLocked();
    job = std::move(*it);
    waiting_.erase(it);
    if (options_.memory_budget) memory_in_use_ += job->memory_estimate;
    running_threads_ += std::max(1, job->threads);
    running_controls_.push_back(job->control.get());
  }
  NotifyChange();
  return job;
}

bool JobQueue::Finish(const CompressJob& job) {
  bool idle = false;
  {
    absl::MutexLock lock(&mu_);
    if (options_.memory_budget) memory_in_use_ -= job.memory_estimate;
    auto it = std::find(running_controls_.begin(), running_controls_.end(), job.control.get());
    if (it != running_controls_.end()) {
      running_controls_.erase(it);
      running_threads_ -= std::max(1, job.threads);
    }
    idle = running_controls_.empty() && waiting_.empty();
  }
  cv_.SignalAll();
  NotifyChange();
  return idle;
}

void JobQueue::SetSlots(int slots) {
  {
    absl::MutexLock lock(&mu_);
    slots_ = slots;
  }
  cv_.SignalAll();
}

bool JobQueue::TryLend(uint64_t bytes) {
  absl::MutexLock lock(&mu_);
  if (stopping_ || !waiting_.empty()) return false;
  if (running_threads_ + lent_ >= slots_) return false;
  if (options_.memory_budget && bytes > *options_.memory_budget - memory_in_use_) return false;
  ++lent_;
  memory_in_use_ += bytes;
  return true;
}

void JobQueue::EndLend(uint64_t bytes, bool ran) {
  bool waiting;
  {
    absl::MutexLock lock(&mu_);
    --lent_;
    if (ran) ++lends_;
    memory_in_use_ -= bytes;
    waiting = !waiting_.empty();
  }
  if (waiting) cv_.SignalAll();  // a job may have waited for the memory
}

int64_t JobQueue::lends() const {
  absl::MutexLock lock(&mu_);
  return lends_;
}

int JobQueue::slots() const {
  absl::MutexLock lock(&mu_);
  return slots_;
}

int JobQueue::running() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(running_controls_.size());
}

int JobQueue::waiting() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(waiting_.size());
}

void JobQueue::Shutdown(absl::Duration grace) {
  std::deque<CompressJob> dropped;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    dropped.swap(waiting_);
    cv_.SignalAll();
    // Running jobs get the grace period, then are cancelled; either way
    // every one has finished when this returns.
    const absl::Time grace_end = absl::Now() + grace;
    while (!running_controls_.empty() && !cv_.WaitWithDeadline(&mu_, grace_end)) {
    }
    for (JobControl* control : running_controls_) control->Cancel();
    while (!running_controls_.empty()) cv_.Wait(&mu_);
  }
  if (expiry_.joinable()) expiry_.join();
  for (CompressJob& job : dropped) job.done(absl::UnavailableError("the server shut down before the job started"));
  if (!dropped.empty()) NotifyChange();
}

std::deque<CompressJob>::iterator JobQueue::StartableLocked() {
  if (static_cast<int>(running_controls_.size()) >= slots_) return waiting_.end();
  if (!options_.memory_budget) return waiting_.begin();
  // The first job that fits the free memory: a large job does not hold up
  // smaller ones behind it.
  const uint64_t free = *options_.memory_budget - memory_in_use_;
  return std::find_if(waiting_.begin(), waiting_.end(),
                      [free](const CompressJob& job) { return job.memory_estimate <= free; });
}

void JobQueue::Expire() {
  while (true) {
    std::vector<std::pair<CompressJob, absl::Status>> answered;
    {
      absl::MutexLock lock(&mu_);
      const absl::Time wake = absl::Now() + options_.expiry_interval;
      while (!stopping_ && !cv_.WaitWithDeadline(&mu_, wake)) {
      }
      if (stopping_) return;
      const absl::Time now = absl::Now();
      // Jobs past the queue's capacity are only allowed while they may wait.
      const int running = static_cast<int>(running_controls_.size());
      const size_t admitted = static_cast<size_t>(std::max(0, slots_ - running)) + options_.queue_capacity;
      size_t position = 0;
      for (auto it = waiting_.begin(); it != waiting_.end(); ++position) {
        absl::Status status;
        if (it->control->Cancelled()) {
          status = absl::CancelledError("the job was cancelled while queued");
        } else if ((options_.expire_admitted_jobs || position >= admitted) && it->admission_deadline &&
                   now > *it->admission_deadline) {
          status = absl::ResourceExhaustedError(options_.expired_message);
        }
        if (status.ok()) {
          ++it;
          continue;
        }
        answered.emplace_back(std::move(*it), std::move(status));
        it = waiting_.erase(it);
      }
    }
    for (auto& [job, status] : answered) job.done(status);
    if (!answered.empty()) NotifyChange();
  }
}

void JobQueue::NotifyChange() {
  if (!options_.on_change) return;
  int running, waiting;
  {
    absl::MutexLock lock(&mu_);
    running = static_cast<int>(running_controls_.size());
    waiting = static_cast<int>(waiting_.size());
  }
  options_.on_change(running, waiting);
}

}  // namespace coremlz::engine
