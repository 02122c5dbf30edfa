// JobQueue: the admission, waiting, expiry and shutdown rules every worker
// pool shares. Jobs here are never compressed: the test plays the pool,
// taking jobs and finishing them, so every outcome is decided by the queue.
#include "engine/job_queue.h"

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace coremlz::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

// How long a test waits for something that must happen; never reached
// unless the queue is broken.
constexpr auto kPatience = std::chrono::seconds(30);

// A job whose `done` outcome the test can wait for.
struct TrackedJob {
  CompressJob job;
  std::shared_ptr<JobControl> control;
  std::shared_future<absl::Status> outcome;
};

TrackedJob MakeJob(uint64_t memory_estimate = 0, std::optional<absl::Time> admission_deadline = std::nullopt) {
  auto promise = std::make_shared<std::promise<absl::Status>>();
  TrackedJob t;
  t.control = std::make_shared<JobControl>();
  t.outcome = promise->get_future().share();
  t.job.control = t.control;
  t.job.memory_estimate = memory_estimate;
  t.job.admission_deadline = admission_deadline;
  t.job.done = [promise](absl::StatusOr<CompressionReport> r) { promise->set_value(r.status()); };
  return t;
}

bool Answered(const TrackedJob& t) {
  return t.outcome.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
}

absl::Status AwaitOutcome(const TrackedJob& t) {
  if (t.outcome.wait_for(kPatience) != std::future_status::ready) return absl::DeadlineExceededError("never answered");
  return t.outcome.get();
}

JobQueueOptions Options(int slots, int capacity) {
  JobQueueOptions o;
  o.slots = slots;
  o.queue_capacity = capacity;
  o.busy_message = [](int s, size_t waiting) { return absl::StrCat(s, " slots busy, ", waiting, " waiting"); };
  o.expired_message = "expired while waiting";
  o.expiry_interval = absl::Milliseconds(1);
  return o;
}

TEST(JobQueue, AdmitsFreeSlotsPlusCapacityThenRefuses) {
  JobQueue queue(Options(2, 1));
  std::vector<TrackedJob> jobs;
  for (int i = 0; i < 3; ++i) {
    jobs.push_back(MakeJob());
    ASSERT_TRUE(queue.Submit(jobs.back().job).ok()) << i;
  }
  TrackedJob refused = MakeJob();
  absl::Status s = queue.Submit(refused.job);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(), "2 slots busy, 3 waiting");
  EXPECT_EQ(queue.waiting(), 3);
  EXPECT_EQ(queue.running(), 0);

  // Running jobs take their slots, not the queue's places: a job finishing
  // makes room for one more.
  std::optional<CompressJob> a = queue.Take(), b = queue.Take();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(queue.running(), 2);
  EXPECT_EQ(queue.Submit(refused.job).code(), absl::StatusCode::kResourceExhausted);
  queue.Finish(*a);
  TrackedJob fits = MakeJob();
  EXPECT_TRUE(queue.Submit(fits.job).ok());
  TrackedJob over = MakeJob();
  EXPECT_EQ(queue.Submit(over.job).code(), absl::StatusCode::kResourceExhausted);
  queue.Finish(*b);
}

TEST(JobQueue, RefusesAJobWithoutControlOrDone) {
  JobQueue queue(Options(1, 1));
  CompressJob no_control;
  no_control.done = [](absl::StatusOr<CompressionReport>) {};
  EXPECT_EQ(queue.Submit(no_control).code(), absl::StatusCode::kInvalidArgument);
  CompressJob no_done;
  no_done.control = std::make_shared<JobControl>();
  EXPECT_EQ(queue.Submit(no_done).code(), absl::StatusCode::kInvalidArgument);
}

TEST(JobQueue, AdmissibleRunsBeforeTheCapacityCheck) {
  JobQueueOptions o = Options(1, 0);
  o.admissible = [](const CompressJob& job) {
    return job.memory_estimate > 100 ? absl::ResourceExhaustedError("too large") : absl::OkStatus();
  };
  JobQueue queue(o);
  TrackedJob small = MakeJob(10);
  ASSERT_TRUE(queue.Submit(small.job).ok());
  TrackedJob large = MakeJob(1000);
  EXPECT_EQ(queue.Submit(large.job).message(), "too large");
  TrackedJob no_room = MakeJob(10);
  EXPECT_EQ(queue.Submit(no_room.job).message(), "1 slots busy, 1 waiting");
}

TEST(JobQueue, AJobThatMayWaitGetsTheNextFreeSlot) {
  JobQueue queue(Options(1, 0));
  TrackedJob first = MakeJob();
  ASSERT_TRUE(queue.Submit(first.job).ok());
  std::optional<CompressJob> running = queue.Take();
  ASSERT_TRUE(running.has_value());
  TrackedJob refused = MakeJob();
  EXPECT_EQ(queue.Submit(refused.job).code(), absl::StatusCode::kResourceExhausted);
  TrackedJob patient = MakeJob(0, absl::Now() + absl::Hours(1));
  ASSERT_TRUE(queue.Submit(patient.job).ok());
  EXPECT_EQ(queue.waiting(), 1);

  // Take() blocks until the slot is free, then hands over the waiting job.
  std::promise<const JobControl*> taken;
  std::thread taker([&] {
    std::optional<CompressJob> next = queue.Take();
    taken.set_value(next ? next->control.get() : nullptr);
    if (next) queue.Finish(*next);
  });
  EXPECT_FALSE(queue.Finish(*running)) << "a job is still waiting: not idle";
  auto future = taken.get_future();
  ASSERT_EQ(future.wait_for(kPatience), std::future_status::ready);
  EXPECT_EQ(future.get(), patient.control.get());
  taker.join();
  EXPECT_FALSE(Answered(patient)) << "the queue answers only jobs that never start";
}

TEST(JobQueue, AJobBeyondCapacityExpiresAtItsAdmissionDeadline) {
  JobQueue queue(Options(1, 0));
  // Within capacity (the free slot): its deadline does not end its wait.
  TrackedJob admitted = MakeJob(0, absl::Now() - absl::Seconds(1));
  ASSERT_TRUE(queue.Submit(admitted.job).ok());
  TrackedJob waiting = MakeJob(0, absl::Now() + absl::Milliseconds(20));
  ASSERT_TRUE(queue.Submit(waiting.job).ok());

  absl::Status s = AwaitOutcome(waiting);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(), "expired while waiting");
  // The pass that answered `waiting` looked at `admitted` first.
  EXPECT_FALSE(Answered(admitted));
  EXPECT_EQ(queue.waiting(), 1);
}

TEST(JobQueue, ExpireAdmittedJobsEndsEveryWaitAtItsDeadline) {
  JobQueueOptions o = Options(1, 0);
  o.expire_admitted_jobs = true;
  JobQueue queue(o);
  TrackedJob admitted = MakeJob(0, absl::Now() - absl::Seconds(1));
  ASSERT_TRUE(queue.Submit(admitted.job).ok());
  TrackedJob without_deadline = MakeJob();
  EXPECT_EQ(queue.Submit(without_deadline.job).code(), absl::StatusCode::kResourceExhausted);

  absl::Status s = AwaitOutcome(admitted);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(), "expired while waiting");
  EXPECT_EQ(queue.waiting(), 0);
}

TEST(JobQueue, AJobCancelledWhileWaitingIsAnsweredWithoutRunning) {
  JobQueue queue(Options(1, 1));
  TrackedJob job = MakeJob();
  ASSERT_TRUE(queue.Submit(job.job).ok());
  job.control->Cancel();
  absl::Status s = AwaitOutcome(job);
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(s.message(), "the job was cancelled while queued");
  EXPECT_EQ(queue.waiting(), 0);
}

TEST(JobQueue, TheMemoryBudgetStartsTheFirstJobThatFits) {
  JobQueueOptions o = Options(3, 3);
  o.memory_budget = 100;
  JobQueue queue(o);
  TrackedJob big1 = MakeJob(80), big2 = MakeJob(80), small = MakeJob(20);
  ASSERT_TRUE(queue.Submit(big1.job).ok());
  ASSERT_TRUE(queue.Submit(big2.job).ok());
  ASSERT_TRUE(queue.Submit(small.job).ok());
  std::optional<CompressJob> a = queue.Take();
  std::optional<CompressJob> b = queue.Take();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->control, big1.control);
  EXPECT_EQ(b->control, small.control) << "the second large job does not fit beside the first";
  EXPECT_EQ(queue.running(), 2);
  EXPECT_EQ(queue.waiting(), 1);

  std::promise<const JobControl*> taken;
  std::thread taker([&] {
    std::optional<CompressJob> next = queue.Take();
    taken.set_value(next ? next->control.get() : nullptr);
    if (next) queue.Finish(*next);
  });
  queue.Finish(*a);
  auto future = taken.get_future();
  ASSERT_EQ(future.wait_for(kPatience), std::future_status::ready);
  EXPECT_EQ(future.get(), big2.control.get());
  taker.join();
  queue.Finish(*b);
}

TEST(JobQueue, WithoutABudgetMemoryDoesNotLimit) {
  JobQueue queue(Options(2, 0));
  TrackedJob a = MakeJob(UINT64_MAX), b = MakeJob(UINT64_MAX);
  ASSERT_TRUE(queue.Submit(a.job).ok());
  ASSERT_TRUE(queue.Submit(b.job).ok());
  std::optional<CompressJob> first = queue.Take(), second = queue.Take();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(queue.running(), 2);
  queue.Finish(*first);
  queue.Finish(*second);
}

TEST(JobQueue, MoreSlotsStartWaitingJobs) {
  JobQueue queue(Options(1, 1));
  TrackedJob a = MakeJob(), b = MakeJob();
  ASSERT_TRUE(queue.Submit(a.job).ok());
  ASSERT_TRUE(queue.Submit(b.job).ok());
  std::optional<CompressJob> first = queue.Take();
  ASSERT_TRUE(first.has_value());
  std::optional<CompressJob> second;
  std::promise<void> taken;
  std::thread taker([&] {
    second = queue.Take();
    taken.set_value();
  });
  queue.SetSlots(2);
  ASSERT_EQ(taken.get_future().wait_for(kPatience), std::future_status::ready);
  taker.join();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->control, b.control);
  EXPECT_EQ(queue.slots(), 2);
  EXPECT_EQ(queue.running(), 2);
  queue.Finish(*first);
  queue.Finish(*second);
}

// Idle slots are lent to running jobs' helpers, never taken from jobs: a
// lend needs a slot no job or other lend holds, no job waiting, and room in
// the memory budget; a job that arrives starts at once even while every
// free slot is lent, and memory a lend held goes to the job that waited.
TEST(JobQueue, LendsOnlyIdleSlotsAndMemory) {
  JobQueueOptions o = Options(3, 3);
  o.memory_budget = 100;
  o.expiry_interval = absl::Hours(1);  // no periodic wake-up hides a missing signal
  JobQueue queue(o);
  // Jobs taken here are finished on every exit, so that a failed assertion
  // cannot leave the queue's destructor waiting for them.
  std::vector<CompressJob> taken;
  struct FinishTaken {
    JobQueue& queue;
    std::vector<CompressJob>& jobs;
    ~FinishTaken() {
      for (const CompressJob& job : jobs) queue.Finish(job);
    }
  } finish_taken{queue, taken};

  TrackedJob a = MakeJob(40);
  ASSERT_TRUE(queue.Submit(a.job).ok());
  std::optional<CompressJob> running = queue.Take();
  ASSERT_TRUE(running.has_value());
  taken.push_back(*running);
  EXPECT_FALSE(queue.TryLend(61)) << "more memory than the budget leaves";
  ASSERT_TRUE(queue.TryLend(30));
  ASSERT_TRUE(queue.TryLend(30));
  EXPECT_FALSE(queue.TryLend(0)) << "one job and two lends hold all three slots";
  EXPECT_EQ(queue.lends(), 0) << "a lend counts once it ran a piece";

  // Lent slots do not count against jobs: this one starts at once. Its
  // memory is also free (40 + 30 + 30 of 100 in use, it needs none).
  TrackedJob b = MakeJob(0);
  ASSERT_TRUE(queue.Submit(b.job).ok());
  std::optional<CompressJob> second = queue.Take();
  ASSERT_TRUE(second.has_value());
  taken.push_back(*second);
  EXPECT_EQ(second->control, b.control);
  queue.EndLend(30, /*ran=*/true);
  EXPECT_FALSE(queue.TryLend(0)) << "two jobs and a lend hold all three slots";

  // A job that waits for memory a lend holds starts when the lend ends,
  // and no slot is lent while it waits.
  TrackedJob c = MakeJob(60);
  ASSERT_TRUE(queue.Submit(c.job).ok());
  std::promise<const JobControl*> started;
  std::thread taker([&] {
    std::optional<CompressJob> next = queue.Take();
    started.set_value(next ? next->control.get() : nullptr);
    if (next) queue.Finish(*next);
  });
  auto future = started.get_future();
  EXPECT_EQ(future.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  queue.Finish(taken.back());
  taken.pop_back();
  EXPECT_FALSE(queue.TryLend(0)) << "a job is waiting";
  EXPECT_EQ(future.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout)
      << "the job started while a lend held the memory it needs";
  queue.EndLend(30, /*ran=*/false);  // found no piece left: not counted
  const bool c_started = future.wait_for(kPatience) == std::future_status::ready;
  if (!c_started) {  // release the taker: Shutdown ends its Take once no job runs
    for (const CompressJob& job : taken) queue.Finish(job);
    taken.clear();
    queue.Shutdown(absl::ZeroDuration());
  }
  taker.join();
  ASSERT_TRUE(c_started) << "the job never got the memory the lend gave back";
  EXPECT_EQ(future.get(), c.control.get());
  EXPECT_EQ(queue.lends(), 1);
}

// A job that keeps several threads busy (a Plan's study) holds that many
// slots for lending's purposes, though it takes one for admission.
TEST(JobQueue, AJobsThreadsAreNotLent) {
  JobQueue queue(Options(3, 3));
  TrackedJob plan = MakeJob();
  plan.job.threads = 2;
  ASSERT_TRUE(queue.Submit(plan.job).ok());
  std::optional<CompressJob> running = queue.Take();
  ASSERT_TRUE(running.has_value());
  EXPECT_TRUE(queue.TryLend(0)) << "the third slot is idle";
  EXPECT_FALSE(queue.TryLend(0)) << "the plan's two threads and one lend fill three slots";
  queue.EndLend(0, true);
  queue.Finish(*running);
  EXPECT_TRUE(queue.TryLend(0));
  EXPECT_TRUE(queue.TryLend(0));
  EXPECT_TRUE(queue.TryLend(0));
  EXPECT_FALSE(queue.TryLend(0));
  for (int i = 0; i < 3; ++i) queue.EndLend(0, true);
}

TEST(JobQueue, LendsNothingWhileShuttingDown) {
  JobQueue queue(Options(2, 1));
  queue.Shutdown(absl::ZeroDuration());
  EXPECT_FALSE(queue.TryLend(0));
}

TEST(JobQueue, ShutdownAnswersWaitingJobsAndCancelsRunningOnesAfterTheGrace) {
  JobQueue queue(Options(1, 1));
  TrackedJob running = MakeJob(), waiting = MakeJob();
  ASSERT_TRUE(queue.Submit(running.job).ok());
  ASSERT_TRUE(queue.Submit(waiting.job).ok());
  std::optional<CompressJob> taken = queue.Take();
  ASSERT_TRUE(taken.has_value());
  // The pool's thread: runs until cancelled, then reports and finishes.
  std::atomic<bool> finished{false};
  std::thread worker([&] {
    while (!taken->control->Cancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    taken->done(absl::CancelledError("stopped"));
    finished = true;
    queue.Finish(*taken);
  });

  queue.Shutdown(absl::ZeroDuration());
  EXPECT_TRUE(finished) << "Shutdown returns only once every running job finished";
  EXPECT_TRUE(running.control->Cancelled());
  absl::Status s = AwaitOutcome(waiting);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "the server shut down before the job started");
  EXPECT_EQ(AwaitOutcome(running).message(), "stopped");
  worker.join();

  TrackedJob late = MakeJob();
  s = queue.Submit(late.job);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "the server is shutting down; retry on another replica");
  EXPECT_FALSE(queue.Take().has_value());
}

TEST(JobQueue, ShutdownLetsARunningJobFinishWithinTheGrace) {
  JobQueue queue(Options(1, 1));
  TrackedJob running = MakeJob();
  ASSERT_TRUE(queue.Submit(running.job).ok());
  std::optional<CompressJob> taken = queue.Take();
  ASSERT_TRUE(taken.has_value());

  std::thread stopper([&] { queue.Shutdown(absl::Hours(1)); });
  // Once new jobs are refused, shutdown has begun: the running job ends on
  // its own, within the grace, and is never cancelled.
  for (;;) {
    TrackedJob probe = MakeJob();
    if (queue.Submit(probe.job).code() == absl::StatusCode::kUnavailable) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_FALSE(queue.Take().has_value()) << "nothing starts during shutdown";
  taken->done(CompressionReport());
  queue.Finish(*taken);
  stopper.join();
  EXPECT_FALSE(running.control->Cancelled());
  EXPECT_TRUE(AwaitOutcome(running).ok());
}

TEST(JobQueue, TheMetricsHookSeesEveryChange) {
  std::vector<std::pair<int, int>> seen;  // (running, waiting)
  std::mutex mu;
  JobQueueOptions o = Options(1, 1);
  o.on_change = [&](int running, int waiting) {
    std::lock_guard<std::mutex> lock(mu);
    seen.emplace_back(running, waiting);
  };
  JobQueue queue(o);
  TrackedJob job = MakeJob();
  ASSERT_TRUE(queue.Submit(job.job).ok());
  std::optional<CompressJob> taken = queue.Take();
  ASSERT_TRUE(taken.has_value());
  EXPECT_TRUE(queue.Finish(*taken)) << "nothing running or waiting: idle";
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_THAT(seen, ElementsAre(Pair(0, 1), Pair(1, 0), Pair(0, 0)));
}

}  // namespace
}  // namespace coremlz::engine
