// The compression rate the early start assumes (api/stream_admission.h),
// learned from the jobs this server completed instead of fixed factors.
//
// The flag's rate (--stream-rate-mb, int8's on a typical core) divided by a
// config's relative cost (engine/compress_cost.h) is only a prior: a faster
// machine compresses faster than it says (a job admitted by it catches up
// with its upload and holds a worker idle), a slower one more slowly (less
// overlap than there could be). Each completed job reports the bytes of
// weights it read and its busy time (run time less its waits for upload
// bytes); jobs of the same relative cost share one history, and once a cost
// has a few of them its rate is an upper quantile of the recent ones. The
// estimate leans high on purpose: overestimating the rate only starts a job
// later, underestimating it can leave a worker waiting for bytes.
//
// What one caller can do to it is bounded: small jobs (fixed costs
// dominate) teach nothing, a learned rate stays within a factor of the
// prior, one history holds the last kWindow jobs of its cost, and the
// service teaches it only jobs whose passes each have one cost
// (engine::HasOneCostPerPass: a pass mixing costs is counted at its
// cheapest, which would file a slow job under a fast cost).
#ifndef COREMLZ_API_LEARNED_STREAM_RATE_H_
#define COREMLZ_API_LEARNED_STREAM_RATE_H_

#include <cstdint>
#include <deque>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace coremlz::api {

class LearnedStreamRate {
 public:
  static constexpr uint64_t kMinJobBytes = uint64_t{16} << 20;  // the default min_job_bytes
  static constexpr int kMinJobs = 3;       // of one cost before its history is used
  static constexpr size_t kWindow = 16;    // jobs kept per cost
  static constexpr double kQuantile = 0.75;
  static constexpr double kMaxFactor = 4;  // learned rates stay within prior / 4 .. prior * 4
  static constexpr size_t kMaxCosts = 64;  // distinct relative costs remembered (least recently taught evicted)

  // `prior`: the flag's rate in bytes/s for a config of relative cost 1; 0
  // disables the early start (Rate is then 0). `learn`: false keeps the prior.
  // `min_job_bytes`: smaller jobs teach nothing.
  LearnedStreamRate(double prior, bool learn, uint64_t min_job_bytes = kMinJobBytes)
      : prior_(prior), learn_(learn), min_job_bytes_(min_job_bytes) {}

  // A completed job: `weight_bytes` read, relative cost `cost` (>= 1),
  // `busy` seconds of compression (its waits for upload bytes excluded).
  // False when it teaches nothing (learning off, too small, no positive
  // time). A new cost beyond kMaxCosts evicts the one taught least recently.
  bool Observe(uint64_t weight_bytes, double cost, absl::Duration busy);

  // Bytes/s a worker is expected to consume a config of relative cost
  // `cost` at.
  double Rate(double cost) const;

  // Jobs learned from, over every cost (for the metric and tests).
  int64_t observed() const;

 private:
  const double prior_;
  const bool learn_;
  const uint64_t min_job_bytes_;
  mutable absl::Mutex mu_;
  struct History {
    std::deque<double> rates;  // bytes/s, oldest first
    int64_t taught = 0;        // observed_ when it last learned
  };
  std::map<double, History> by_cost_ ABSL_GUARDED_BY(mu_);
  int64_t observed_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace coremlz::api

#endif  // COREMLZ_API_LEARNED_STREAM_RATE_H_
