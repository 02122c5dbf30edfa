// Progress reporting and cancellation for long compression jobs. The engine
// checks Cancelled() between weights, so a cancelled job stops within one
// weight's work.
#ifndef COREMLZ_ENGINE_JOB_CONTROL_H_
#define COREMLZ_ENGINE_JOB_CONTROL_H_

#include <atomic>
#include <cstdint>
#include <string>

namespace coremlz::engine {

struct Progress {
  int weights_done = 0;
  int weights_total = 0;
  uint64_t bytes_done = 0;   // input weight bytes processed
  uint64_t bytes_total = 0;
  std::string current;       // weight being worked on
};

class JobControl {
 public:
  virtual ~JobControl() = default;
  virtual bool Cancelled() const { return cancelled_.load(std::memory_order_relaxed); }
  virtual void OnProgress(const Progress& progress) {}
  void Cancel() { cancelled_.store(true, std::memory_order_relaxed); }

 private:
  std::atomic<bool> cancelled_{false};
};

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_JOB_CONTROL_H_
