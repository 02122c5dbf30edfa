#include "compress/reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace coremlz::compress {
namespace {

TEST(AllFinite, FindsAnyNanOrInfinityAnywhere) {
  std::vector<float> v(1000, 0.5f);
  EXPECT_TRUE(AllFinite(v));
  EXPECT_TRUE(AllFinite({}));
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::signaling_NaN()}) {
    for (size_t at : {size_t{0}, size_t{7}, size_t{16}, size_t{999}}) {
      std::vector<float> w = v;
      w[at] = bad;
      EXPECT_FALSE(AllFinite(w)) << at;
    }
  }
  std::vector<float> extremes = {std::numeric_limits<float>::max(), -std::numeric_limits<float>::max(),
                                 std::numeric_limits<float>::denorm_min(), -0.0f};
  EXPECT_TRUE(AllFinite(extremes));
}

// Against the obvious sequential fold, for lengths around the lane count.
TEST(MinMax, EqualsSequentialFold) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (size_t n : {0, 1, 15, 16, 17, 31, 33, 1000, 4099}) {
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng);
    float lo = 0.25f, hi = -0.25f;  // carried in, like a block's earlier runs
    MinMax(v, &lo, &hi);
    float want_lo = 0.25f, want_hi = -0.25f;
    for (float x : v) {
      want_lo = std::min(want_lo, x);
      want_hi = std::max(want_hi, x);
    }
    EXPECT_EQ(lo, want_lo) << n;
    EXPECT_EQ(hi, want_hi) << n;
  }
}

TEST(MinMax, IgnoresNanLikeStdMin) {
  std::vector<float> v = {1.f, std::numeric_limits<float>::quiet_NaN(), -3.f, 2.f};
  float lo = std::numeric_limits<float>::infinity(), hi = -std::numeric_limits<float>::infinity();
  MinMax(v, &lo, &hi);
  EXPECT_EQ(lo, -3.f);
  EXPECT_EQ(hi, 2.f);
}

}  // namespace
}  // namespace coremlz::compress
