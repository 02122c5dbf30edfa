// A fixed set of threads running submitted closures in submission order of
// start: the embedded CLI compresses several weights of one model at once
// (coremlzd's pool runs whole jobs in parallel instead). The destructor
// runs everything already submitted, then joins.
#ifndef COREMLZ_ENGINE_TASK_POOL_H_
#define COREMLZ_ENGINE_TASK_POOL_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace coremlz::engine {

class TaskPool {
 public:
  explicit TaskPool(int threads);
  ~TaskPool();
  TaskPool(const TaskPool&) = delete;
  TaskPool& operator=(const TaskPool&) = delete;

  void Submit(std::function<void()> task);

 private:
  void Loop();
  bool Ready() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); }

  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_TASK_POOL_H_
