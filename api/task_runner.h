// A small fixed pool of threads for short server-side tasks that must not
// run on gRPC's callback threads (Inspect jobs, validation bookkeeping).
#ifndef COREMLZ_API_TASK_RUNNER_H_
#define COREMLZ_API_TASK_RUNNER_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace coremlz::api {

class TaskRunner {
 public:
  explicit TaskRunner(int threads);
  ~TaskRunner();  // runs what is queued, then joins
  TaskRunner(const TaskRunner&) = delete;
  TaskRunner& operator=(const TaskRunner&) = delete;

  void Post(std::function<void()> task);

 private:
  absl::Mutex mu_;
  absl::CondVar cv_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace coremlz::api

#endif  // COREMLZ_API_TASK_RUNNER_H_
