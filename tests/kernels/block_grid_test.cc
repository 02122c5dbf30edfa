// BlockGrid: ForEachRun must visit every element exactly once, in row-major
// order, in maximal runs, each tagged with the row-major index of its block
// in the grid. The reference computes the block of every element from its
// coordinates.
#include "compress/block_grid.h"

#include <cstdint>
#include <random>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace coremlz::compress {
namespace {

using kernel_test::NumElements;
using kernel_test::Shape;
using kernel_test::ShapeStr;
using kernel_test::Unravel;

struct Run {
  int64_t block, start, length;
};

std::vector<Run> CollectRuns(const BlockGrid& g) {
  std::vector<Run> runs;
  g.ForEachRun([&](int64_t b, int64_t s, int64_t l) { runs.push_back({b, s, l}); });
  return runs;
}

// Block of every element: coordinates divided by the block size (0 = the
// whole axis), ravelled row-major over the grid shape.
std::vector<int64_t> ReferenceBlocks(const Shape& shape, const Shape& blocks) {
  Shape eff(shape.size()), grid(shape.size());
  for (size_t a = 0; a < shape.size(); ++a) {
    eff[a] = blocks[a] == 0 ? shape[a] : blocks[a];
    grid[a] = shape[a] / eff[a];
  }
  const int64_t n = NumElements(shape);
  std::vector<int64_t> out(n);
  for (int64_t e = 0; e < n; ++e) {
    const std::vector<int64_t> c = Unravel(e, shape);
    int64_t b = 0;
    for (size_t a = 0; a < shape.size(); ++a) b = b * grid[a] + c[a] / eff[a];
    out[e] = b;
  }
  return out;
}

void CheckGrid(const Shape& shape, const Shape& blocks) {
  SCOPED_TRACE("shape " + ShapeStr(shape) + " blocks " + ShapeStr(blocks));
  auto g = BlockGrid::Make(shape, blocks);
  ASSERT_TRUE(g.ok()) << g.status();
  const int64_t n = NumElements(shape);
  EXPECT_EQ(g->num_elements(), n);
  EXPECT_EQ(g->shape(), shape);
  int64_t expected_blocks = 1;
  for (size_t a = 0; a < shape.size(); ++a) {
    const int64_t eff = blocks[a] == 0 ? shape[a] : blocks[a];
    EXPECT_EQ(g->block()[a], eff) << "axis " << a;
    EXPECT_EQ(g->grid_shape()[a], shape[a] / eff) << "axis " << a;
    expected_blocks *= shape[a] / eff;
  }
  EXPECT_EQ(g->num_blocks(), expected_blocks);

  const std::vector<int64_t> ref = ReferenceBlocks(shape, blocks);
  const std::vector<Run> runs = CollectRuns(*g);
  std::vector<int> visits(n, 0);
  int64_t next = 0;
  for (size_t r = 0; r < runs.size(); ++r) {
    const Run& run = runs[r];
    ASSERT_EQ(run.start, next) << "run " << r << " is not contiguous with the previous one";
    ASSERT_GT(run.length, 0) << "run " << r;
    ASSERT_LE(run.start + run.length, n) << "run " << r;
    ASSERT_GE(run.block, 0);
    ASSERT_LT(run.block, g->num_blocks());
    for (int64_t e = run.start; e < run.start + run.length; ++e) {
      ++visits[e];
      ASSERT_EQ(run.block, ref[e]) << "element " << e << " of run " << r;
    }
    if (r > 0) {
      // Maximal: two neighbouring runs in the same block should have been one.
      EXPECT_NE(run.block, runs[r - 1].block) << "runs " << r - 1 << " and " << r << " could merge";
    }
    next = run.start + run.length;
  }
  EXPECT_EQ(next, n);
  for (int64_t e = 0; e < n; ++e) ASSERT_EQ(visits[e], 1) << "element " << e;
}

TEST(BlockGridTest, HandPickedGrids) {
  CheckGrid({4, 6}, {1, 0});        // per channel on axis 0
  CheckGrid({4, 6}, {0, 1});        // per channel on axis 1
  CheckGrid({4, 6}, {0, 0});        // per tensor
  CheckGrid({4, 6}, {4, 6});        // full blocks == per tensor
  CheckGrid({4, 6}, {1, 2});        // per block
  CheckGrid({4, 6}, {2, 3});
  CheckGrid({90, 30, 2, 2}, {1, 2, 0, 0});
  CheckGrid({2, 1, 70, 35}, {0, 0, 1, 5});
  CheckGrid({3, 4, 5}, {3, 2, 5});
  CheckGrid({1}, {0});
  CheckGrid({1}, {1});
  CheckGrid({7}, {7});
  CheckGrid({8}, {2});
  CheckGrid({2, 3, 4, 5, 6}, {1, 3, 2, 5, 3});
  CheckGrid({2, 3, 4, 5, 6}, {2, 1, 4, 1, 6});
}

TEST(BlockGridTest, RandomShapesAndBlocks) {
  std::mt19937_64 rng(1234);
  for (int iter = 0; iter < 3000; ++iter) {
    const int rank = 1 + static_cast<int>(rng() % 5);
    Shape shape = kernel_test::RandomShape(rng, rank, rank >= 4 ? 5 : 8);
    Shape blocks(rank);
    for (int a = 0; a < rank; ++a) {
      const auto divs = kernel_test::Divisors(shape[a]);
      const int pick = static_cast<int>(rng() % (divs.size() + 1));
      blocks[a] = pick == static_cast<int>(divs.size()) ? 0 : divs[pick];  // 0, 1, ..., full dim
    }
    CheckGrid(shape, blocks);
    if (HasFatalFailure()) return;
  }
}

TEST(BlockGridTest, ScalarIsOneRun) {
  auto g = BlockGrid::Make({}, {});
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->num_elements(), 1);
  EXPECT_EQ(g->num_blocks(), 1);
  const auto runs = CollectRuns(*g);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].block, 0);
  EXPECT_EQ(runs[0].start, 0);
  EXPECT_EQ(runs[0].length, 1);
}

TEST(BlockGridTest, EmptyTensorHasNoRuns) {
  for (const auto& [shape, blocks] : std::vector<std::pair<Shape, Shape>>{
           {{0}, {0}}, {{3, 0}, {1, 0}}, {{0, 4}, {0, 2}}, {{2, 0, 3}, {1, 0, 0}}}) {
    auto g = BlockGrid::Make(shape, blocks);
    ASSERT_TRUE(g.ok()) << ShapeStr(shape) << " " << g.status();
    EXPECT_EQ(g->num_elements(), 0);
    EXPECT_TRUE(CollectRuns(*g).empty()) << ShapeStr(shape);
  }
}

TEST(BlockGridTest, MakeRejectsNonDivisibleBlocks) {
  std::mt19937_64 rng(99);
  for (int iter = 0; iter < 500; ++iter) {
    const int rank = 1 + static_cast<int>(rng() % 4);
    Shape shape = kernel_test::RandomShape(rng, rank, 9);
    Shape blocks(rank, 0);
    // One axis gets a block size in (1, dim) that does not divide it.
    const int a = static_cast<int>(rng() % rank);
    std::vector<int64_t> bad;
    for (int64_t b = 2; b < shape[a]; ++b)
      if (shape[a] % b != 0) bad.push_back(b);
    if (bad.empty()) continue;
    blocks[a] = bad[rng() % bad.size()];
    auto g = BlockGrid::Make(shape, blocks);
    EXPECT_FALSE(g.ok()) << ShapeStr(shape) << " blocks " << ShapeStr(blocks);
  }
  EXPECT_FALSE(BlockGrid::Make({6, 4}, {4, 0}).ok());
  EXPECT_FALSE(BlockGrid::Make({6, 4}, {0, 3}).ok());
  EXPECT_FALSE(BlockGrid::Make({5}, {2}).ok());
}

TEST(BlockGridTest, MakeRejectsNegativeAndRankMismatch) {
  EXPECT_FALSE(BlockGrid::Make({4, 4}, {-1, 0}).ok());
  EXPECT_FALSE(BlockGrid::Make({4, 4}, {0}).ok());
  EXPECT_FALSE(BlockGrid::Make({4}, {0, 0}).ok());
}

// A block larger than its axis does not divide it (3 % 4 != 0), so by the
// header's contract ("Fails if a block size does not divide its dimension")
// and by Core ML tools (compute_qparams: `dim_size % block_size != 0` ->
// skip) it must be rejected.
// KERNEL BUG (block_grid.cc:17, `if (b == 0 || b > dim) b = dim;`): Make
// silently clamps a block size larger than the axis to the whole axis and
// succeeds, so a per-axis block_size list such as [1, 32] on a [4, 16]
// weight gets quantized instead of skipped.
TEST(BlockGridTest, MakeRejectsBlockLargerThanAxis) {
  EXPECT_FALSE(BlockGrid::Make({3}, {4}).ok()) << "KERNEL BUG: block 4 on an axis of 3 was accepted";
  EXPECT_FALSE(BlockGrid::Make({4, 16}, {1, 32}).ok()) << "KERNEL BUG: block 32 on an axis of 16 was accepted";
}

}  // namespace
}  // namespace coremlz::compress
