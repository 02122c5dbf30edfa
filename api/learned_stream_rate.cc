#include "api/learned_stream_rate.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace coremlz::api {

bool LearnedStreamRate::Observe(uint64_t weight_bytes, double cost, absl::Duration busy) {
  if (!learn_ || !(prior_ > 0) || weight_bytes < min_job_bytes_ || !(cost >= 1) || !std::isfinite(cost)) {
    return false;
  }
  const double seconds = absl::ToDoubleSeconds(busy);
  if (!(seconds > 0) || !std::isfinite(seconds)) return false;
  const double rate = static_cast<double>(weight_bytes) / seconds;
  absl::MutexLock lock(&mu_);
  auto it = by_cost_.find(cost);
  if (it == by_cost_.end()) {
    if (by_cost_.size() >= kMaxCosts) {
      by_cost_.erase(std::min_element(by_cost_.begin(), by_cost_.end(), [](const auto& a, const auto& b) {
        return a.second.taught < b.second.taught;
      }));
    }
    it = by_cost_.emplace(cost, History()).first;
  }
  History& h = it->second;
  h.rates.push_back(rate);
  if (h.rates.size() > kWindow) h.rates.pop_front();
  h.taught = ++observed_;
  return true;
}

double LearnedStreamRate::Rate(double cost) const {
  if (!(prior_ > 0)) return 0;
  const double prior = prior_ / std::max(1.0, cost);
  if (!learn_) return prior;
  std::vector<double> recent;
  {
    absl::MutexLock lock(&mu_);
    auto it = by_cost_.find(cost);
    if (it == by_cost_.end() || static_cast<int>(it->second.rates.size()) < kMinJobs) return prior;
    recent.assign(it->second.rates.begin(), it->second.rates.end());
  }
  // The upper quantile: nearest rank, rounded up.
  const size_t rank = static_cast<size_t>(std::ceil(kQuantile * static_cast<double>(recent.size()))) - 1;
  std::nth_element(recent.begin(), recent.begin() + rank, recent.end());
  return std::clamp(recent[rank], prior / kMaxFactor, prior * kMaxFactor);
}

int64_t LearnedStreamRate::observed() const {
  absl::MutexLock lock(&mu_);
  return observed_;
}

}  // namespace coremlz::api
