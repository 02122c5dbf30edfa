// The radix sort of float weights against std::stable_sort: the same values
// in the same order, bit for bit (so 0.0 and -0.0 keep their input order).
#include "compress/float_sort.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace coremlz::compress {
namespace {

std::vector<uint32_t> Bits(const std::vector<float>& v) {
  std::vector<uint32_t> b(v.size());
  std::memcpy(b.data(), v.data(), 4 * v.size());
  return b;
}

void ExpectStableSortOrder(std::vector<float> v) {
  std::vector<float> want = v;
  std::stable_sort(want.begin(), want.end(), std::less<float>());
  ASSERT_TRUE(StableSortFloats(v, nullptr));
  EXPECT_EQ(Bits(v), Bits(want));
}

float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(FloatSortTest, MatchesStableSortBitForBit) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 0.02f);
  for (size_t n : {0, 1, 2, 3, 17, 1000, 100000}) {
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng);
    ExpectStableSortOrder(v);
  }
  // Many duplicates and both zeros, interleaved in a known order.
  std::vector<float> dup(50000);
  for (size_t i = 0; i < dup.size(); ++i) {
    const uint32_t r = rng() % 7;
    dup[i] = r == 0 ? 0.0f : r == 1 ? -0.0f : static_cast<float>(static_cast<int>(rng() % 9) - 4) * 0.25f;
  }
  ExpectStableSortOrder(dup);
  // Every exponent range: subnormals, the extremes, infinities.
  std::vector<float> wide(200000);
  for (float& x : wide) {
    do {
      x = FromBits(static_cast<uint32_t>(rng()));
    } while (std::isnan(x));
  }
  wide[5] = std::numeric_limits<float>::infinity();
  wide[6] = -std::numeric_limits<float>::infinity();
  wide[7] = std::numeric_limits<float>::denorm_min();
  wide[8] = -std::numeric_limits<float>::denorm_min();
  wide[9] = -0.0f;
  wide[10] = 0.0f;
  wide[11] = -0.0f;
  ExpectStableSortOrder(wide);
  // A digit all values share (the pass is skipped).
  std::vector<float> narrow(4096);
  for (size_t i = 0; i < narrow.size(); ++i) narrow[i] = 1.0f + static_cast<float>(rng() % 64) / 1024.0f;
  ExpectStableSortOrder(narrow);
}

TEST(FloatSortTest, StopsWhenCancelled) {
  CancelCheck stop([] { return true; });
  std::vector<float> v(1 << 21, 1.0f);
  v[3] = -2.0f;
  EXPECT_FALSE(StableSortFloats(v, &stop));
  CancelCheck never([] { return false; });
  std::vector<float> w = {3.f, -1.f, 2.f};
  ASSERT_TRUE(StableSortFloats(w, &never));
  EXPECT_EQ(w, (std::vector<float>{-1.f, 2.f, 3.f}));
}

}  // namespace
}  // namespace coremlz::compress
