// A small fixed pool of threads for short server-side tasks that must not
// run on gRPC's callback threads (Inspect jobs, validation bookkeeping).
#ifndef COREMLZ_API_TASK_RUNNER_H_
#define COREMLZ_API_TASK_RUNNER_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace coremlz::api {

class TaskRunner {
 public:
  explicit TaskRunner(int threads);
  ~TaskRunner();  // runs what is queued, then joins
  TaskRunner(const TaskRunner&) = delete;
  TaskRunner& operator=(const TaskRunner&) = delete;

  void Post(std::function<void()> task);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace coremlz::api

#endif  // COREMLZ_API_TASK_RUNNER_H_
