// The allocation against exhaustive search on small random instances.
#include "plan/knapsack.h"

#include <limits>
#include <random>

#include "gtest/gtest.h"

namespace coremlz::plan {
namespace {

std::vector<std::vector<Choice>> RandomItems(std::mt19937_64& rng, int items, int choices, uint64_t max_bytes) {
  std::uniform_int_distribution<uint64_t> bytes(1, max_bytes);
  std::uniform_real_distribution<double> cost(0.0, 10.0);
  std::vector<std::vector<Choice>> out(items);
  for (auto& item : out) {
    const int n = 1 + static_cast<int>(rng() % choices);
    for (int c = 0; c < n; ++c) item.push_back({bytes(rng), cost(rng)});
  }
  return out;
}

// Least cost within `budget` by trying every selection; +inf if none fits.
double BruteForce(const std::vector<std::vector<Choice>>& items, uint64_t budget) {
  double best = std::numeric_limits<double>::infinity();
  std::vector<size_t> pick(items.size(), 0);
  while (true) {
    uint64_t bytes = 0;
    double cost = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      bytes += items[i][pick[i]].bytes;
      cost += items[i][pick[i]].cost;
    }
    if (bytes <= budget) best = std::min(best, cost);
    size_t i = 0;
    while (i < items.size() && ++pick[i] == items[i].size()) pick[i++] = 0;
    if (i == items.size()) return best;
  }
}

void CheckSolution(const std::vector<std::vector<Choice>>& items, const KnapsackSolution& s) {
  uint64_t bytes = 0;
  double cost = 0;
  ASSERT_EQ(s.picks.size(), items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    bytes += items[i][s.picks[i]].bytes;
    cost += items[i][s.picks[i]].cost;
  }
  EXPECT_EQ(bytes, s.bytes);
  EXPECT_NEAR(cost, s.cost, 1e-9);
}

TEST(KnapsackTest, ExactGridMatchesExhaustiveSearch) {
  std::mt19937_64 rng(12);
  for (int round = 0; round < 200; ++round) {
    const auto items = RandomItems(rng, 1 + round % 6, 4, 200);
    auto k = Knapsack::Solve(items);  // range < 2^16: one-byte cells
    ASSERT_TRUE(k.ok()) << k.status();
    ASSERT_EQ(k->quantum(), 1u);
    for (uint64_t budget = 0; budget <= k->max_bytes() + 1; budget += 1 + budget / 7) {
      const double want = BruteForce(items, budget);
      const auto got = k->MinCostWithin(budget);
      if (std::isinf(want)) {
        EXPECT_FALSE(got.has_value()) << "budget " << budget;
        continue;
      }
      ASSERT_TRUE(got.has_value()) << "budget " << budget;
      CheckSolution(items, *got);
      EXPECT_LE(got->bytes, budget);
      EXPECT_NEAR(got->cost, want, 1e-9) << "round " << round << " budget " << budget;
    }
  }
}

TEST(KnapsackTest, CoarseGridHonoursTheBudgetAndLosesAtMostOneCellPerItem) {
  std::mt19937_64 rng(34);
  for (int round = 0; round < 100; ++round) {
    const int n = 1 + round % 6;
    const auto items = RandomItems(rng, n, 4, 1000000);
    auto k = Knapsack::Solve(items, /*max_cells=*/64);
    ASSERT_TRUE(k.ok());
    if (k->max_bytes() - k->min_bytes() > 64) {
      ASSERT_GT(k->quantum(), 1u);
    }
    for (int step = 0; step <= 10; ++step) {
      const uint64_t budget = k->min_bytes() + (k->max_bytes() - k->min_bytes()) * step / 10;
      const auto got = k->MinCostWithin(budget);
      ASSERT_TRUE(got.has_value());
      CheckSolution(items, *got);
      EXPECT_LE(got->bytes, budget);  // rounding up never overspends
      // Never worse than the true optimum with n cells less budget.
      const uint64_t slack = static_cast<uint64_t>(n) * k->quantum();
      if (budget >= k->min_bytes() + slack) {
        EXPECT_LE(got->cost, BruteForce(items, budget - slack) + 1e-9);
      }
    }
  }
}

TEST(KnapsackTest, MinBytesWithinACostLimit) {
  std::mt19937_64 rng(56);
  for (int round = 0; round < 100; ++round) {
    const auto items = RandomItems(rng, 1 + round % 5, 4, 150);
    auto k = Knapsack::Solve(items);
    ASSERT_TRUE(k.ok());
    const double limit = 3.0 * items.size();
    const auto got = k->MinBytesWithin(limit);
    // The smallest budget whose exhaustive optimum meets the limit.
    std::optional<uint64_t> want;
    for (uint64_t b = k->min_bytes(); b <= k->max_bytes() && !want; ++b) {
      if (BruteForce(items, b) <= limit) want = b;
    }
    ASSERT_EQ(got.has_value(), want.has_value());
    if (!got) continue;
    CheckSolution(items, *got);
    EXPECT_LE(got->cost, limit + 1e-12);
    EXPECT_EQ(got->bytes, *want);
  }
}

TEST(KnapsackTest, RefusesAnItemWithoutChoices) {
  EXPECT_FALSE(Knapsack::Solve({{{1, 0}}, {}}).ok());
}

}  // namespace
}  // namespace coremlz::plan
