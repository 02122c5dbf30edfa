// The allocation: a multiple-choice knapsack. Every item (a weight) takes
// exactly one of its choices (a candidate compression), each with a size in
// bytes and a cost (predicted output noise). Solved exactly by dynamic
// programming over a grid of sizes.
//
// The grid: sizes are measured above the smallest possible total (every item
// at its smallest choice), in cells of `quantum` bytes, at most `max_cells`
// cells spanning the whole range up to the largest total. A choice's size is
// rounded UP to whole cells, so a solution's true size never exceeds its grid
// size: a budget is always honoured. What rounding can cost is at most one
// cell per item of unused budget (items x quantum bytes: items / max_cells of
// the compressible range), against which the optimum is exact. When the range
// fits in max_cells the quantum is 1 byte and the DP is exact outright. The
// planner asks for 2^26 / items cells (2^16..2^22): 1.56M for MobileNetV2's 43
// planned weights, 4-byte cells over its ~6 MB range, so at most ~170 bytes
// of budget unused; one-byte cells for the transformer encoder's 6. Time and memory are items x cells
// (x choices for time).
#ifndef COREMLZ_PLAN_KNAPSACK_H_
#define COREMLZ_PLAN_KNAPSACK_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"

namespace coremlz::plan {

struct Choice {
  uint64_t bytes = 0;
  double cost = 0;  // >= 0
};

struct KnapsackSolution {
  std::vector<int> picks;  // per item, the index of its choice
  uint64_t bytes = 0;      // true total size
  double cost = 0;
};

class Knapsack {
 public:
  // Every item needs at least one choice (INVALID_ARGUMENT otherwise).
  static absl::StatusOr<Knapsack> Solve(std::vector<std::vector<Choice>> items, int64_t max_cells = 1 << 16);

  uint64_t min_bytes() const { return base_; }
  uint64_t max_bytes() const { return max_; }
  uint64_t quantum() const { return quantum_; }

  // Least cost within `budget` bytes; nullopt below min_bytes().
  std::optional<KnapsackSolution> MinCostWithin(uint64_t budget) const;
  // Fewest bytes (on the grid) whose least cost is at most `cost_limit`;
  // nullopt when no selection is that cheap.
  std::optional<KnapsackSolution> MinBytesWithin(double cost_limit) const;

 private:
  KnapsackSolution Backtrack(int64_t cell) const;

  std::vector<std::vector<Choice>> items_;
  std::vector<std::vector<int64_t>> cells_;  // per item and choice: grid size above the item's smallest
  uint64_t base_ = 0, max_ = 0, quantum_ = 1;
  int64_t grid_ = 0;  // cells 0..grid_
  std::vector<double> best_;  // least cost with all items within each cell count
  std::vector<std::vector<uint8_t>> pick_;  // per item and cell count: the choice on the optimal path
};

}  // namespace coremlz::plan

#endif  // COREMLZ_PLAN_KNAPSACK_H_
