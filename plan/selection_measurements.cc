#include "plan/selection_measurements.h"

#include <algorithm>
#include <atomic>
#include <limits>
#include <thread>
#include <utility>

#include "absl/status/statusor.h"

namespace coremlz::plan {

absl::Status SelectionMeasurements::MeasureAll(const std::vector<std::vector<int>>& selections) {
  std::vector<const std::vector<int>*> todo;
  for (const std::vector<int>& s : selections) {
    if (noise_.count(s)) continue;
    if (std::none_of(todo.begin(), todo.end(), [&](const std::vector<int>* t) { return *t == s; })) todo.push_back(&s);
  }
  std::vector<absl::StatusOr<OutputNoise>> noises(todo.size(), absl::UnknownError("not measured"));
  std::atomic<size_t> next{0};
  auto measure = [&] {
    for (size_t k; (k = next++) < todo.size();) {
      if (cancelled_ && cancelled_()) return;
      std::vector<std::pair<int, int>> choice;
      for (size_t w = 0; w < todo[k]->size(); ++w) choice.emplace_back(static_cast<int>(w), (*todo[k])[w]);
      noises[k] = study_.Measure(choice);
    }
  };
  std::vector<std::thread> helpers;
  const size_t threads = std::min<size_t>(todo.size(), static_cast<size_t>(std::max(1, threads_)));
  for (size_t t = 1; t < threads; ++t) helpers.emplace_back(measure);
  measure();
  for (std::thread& t : helpers) t.join();
  if (cancelled_ && cancelled_()) return absl::CancelledError("the plan was cancelled");
  for (const absl::StatusOr<OutputNoise>& n : noises) {
    if (!n.ok()) return n.status();
  }
  for (size_t k = 0; k < todo.size(); ++k) noise_.emplace(*todo[k], *std::move(noises[k]));
  return absl::OkStatus();
}

double SelectionMeasurements::WorstPsnrOf(const std::vector<int>& selection) const {
  auto it = noise_.find(selection);
  return it == noise_.end() ? std::numeric_limits<double>::quiet_NaN() : WorstPsnr(it->second);
}

}  // namespace coremlz::plan
