#include "plan/knapsack.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"

namespace coremlz::plan {

absl::StatusOr<Knapsack> Knapsack::Solve(std::vector<std::vector<Choice>> items, int64_t max_cells) {
  Knapsack k;
  uint64_t range = 0;
  std::vector<uint64_t> smallest(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].empty()) return absl::InvalidArgumentError(absl::StrCat("item ", i, " has no choice"));
    if (items[i].size() > 255) return absl::InvalidArgumentError(absl::StrCat("item ", i, " has over 255 choices"));
    uint64_t lo = std::numeric_limits<uint64_t>::max(), hi = 0;
    for (const Choice& c : items[i]) {
      lo = std::min(lo, c.bytes);
      hi = std::max(hi, c.bytes);
    }
    smallest[i] = lo;
    k.base_ += lo;
    k.max_ += hi;
    range += hi - lo;
  }
  k.quantum_ = std::max<uint64_t>(1, (range + max_cells - 1) / std::max<int64_t>(1, max_cells));
  k.cells_.resize(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    int64_t widest = 0;
    for (const Choice& c : items[i]) {
      const int64_t cells = static_cast<int64_t>((c.bytes - smallest[i] + k.quantum_ - 1) / k.quantum_);
      k.cells_[i].push_back(cells);
      widest = std::max(widest, cells);
    }
    k.grid_ += widest;
  }
  // best[g]: least cost of the items so far within g cells ("within", so it
  // never increases with g).
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> best(k.grid_ + 1, 0.0), next(k.grid_ + 1);
  k.pick_.assign(items.size(), std::vector<uint8_t>(k.grid_ + 1, 0));
  for (size_t i = 0; i < items.size(); ++i) {
    for (int64_t g = 0; g <= k.grid_; ++g) {
      double v = inf;
      uint8_t arg = 0;
      for (size_t c = 0; c < items[i].size(); ++c) {
        const int64_t w = k.cells_[i][c];
        if (w > g || best[g - w] == inf) continue;
        const double total = best[g - w] + items[i][c].cost;
        if (total < v) {  // ties keep the earlier choice: deterministic
          v = total;
          arg = static_cast<uint8_t>(c);
        }
      }
      next[g] = v;
      k.pick_[i][g] = arg;
    }
    best.swap(next);
  }
  k.best_ = std::move(best);
  k.items_ = std::move(items);
  return k;
}

KnapsackSolution Knapsack::Backtrack(int64_t cell) const {
  KnapsackSolution s;
  s.picks.assign(items_.size(), 0);
  for (size_t i = items_.size(); i-- > 0;) {
    const int c = pick_[i][cell];
    s.picks[i] = c;
    s.bytes += items_[i][c].bytes;
    s.cost += items_[i][c].cost;
    cell -= cells_[i][c];
  }
  return s;
}

std::optional<KnapsackSolution> Knapsack::MinCostWithin(uint64_t budget) const {
  if (budget < base_) return std::nullopt;
  const int64_t cell = std::min<int64_t>(grid_, static_cast<int64_t>((budget - base_) / quantum_));
  if (best_[cell] == std::numeric_limits<double>::infinity()) return std::nullopt;
  return Backtrack(cell);
}

std::optional<KnapsackSolution> Knapsack::MinBytesWithin(double cost_limit) const {
  for (int64_t g = 0; g <= grid_; ++g) {
    if (best_[g] <= cost_limit) return Backtrack(g);
  }
  return std::nullopt;
}

}  // namespace coremlz::plan
