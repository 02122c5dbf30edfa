// CodedValues against the obvious reference: the set of values it returns
// is the set of values of the whole reconstruction (0.0 and -0.0 as one).
#include "engine/coded_values.h"

#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <vector>

#include "gtest/gtest.h"

namespace coremlz::engine {
namespace {

std::set<uint32_t> BitSet(const std::vector<float>& v) {
  std::set<uint32_t> s;
  for (float f : v) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    s.insert(u == 0x80000000u ? 0u : u);
  }
  return s;
}

TEST(CodedValuesTest, SameSetAsTheReconstruction) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (int iter = 0; iter < 200; ++iter) {
    const int bits = iter % 2 ? 4 : 8;
    const int64_t entries = int64_t{1} << bits;
    const int64_t run = entries + static_cast<int64_t>(rng() % 300);
    const int64_t runs = 1 + static_cast<int64_t>(rng() % 20);
    const int64_t blocks = 1 + static_cast<int64_t>(rng() % runs);  // a block may span several runs
    const int64_t n = run * runs;
    // Each block's value of each code; few codes used in some blocks.
    std::vector<float> table(blocks * entries);
    for (float& t : table) t = normal(rng);
    table[0] = -0.0f;
    std::vector<uint8_t> codes(n), mask(n);
    std::vector<float> rec(n);
    const bool masked = iter % 3 == 0;
    for (int64_t r = 0; r < runs; ++r) {
      const int64_t b = r % blocks;
      const uint32_t used = 1 + rng() % entries;
      for (int64_t i = r * run; i < (r + 1) * run; ++i) {
        codes[i] = static_cast<uint8_t>(rng() % used);
        mask[i] = masked ? rng() % 2 : 1;
        rec[i] = mask[i] ? table[b * entries + codes[i]] : 0.0f;
      }
    }
    auto got = CodedValues(rec, codes, bits, masked ? &mask : nullptr, [&](auto&& fn) {
      for (int64_t r = 0; r < runs; ++r) fn(r % blocks, r * run, run);
    });
    ASSERT_TRUE(got.has_value());
    EXPECT_LE(got->size(), static_cast<size_t>(runs * entries + 1));
    EXPECT_EQ(BitSet(*got), BitSet(rec)) << "iteration " << iter;
  }
}

TEST(CodedValuesTest, RunsShorterThanThePaletteAreLeftToTheCaller) {
  std::vector<float> rec(64, 1.0f);
  std::vector<uint8_t> codes(64, 3);
  auto got = CodedValues(rec, codes, 8, nullptr, [&](auto&& fn) {
    for (int64_t r = 0; r < 4; ++r) fn(r, r * 16, 16);
  });
  EXPECT_FALSE(got.has_value());
  auto ok = CodedValues(rec, codes, 4, nullptr, [&](auto&& fn) {
    for (int64_t r = 0; r < 4; ++r) fn(r, r * 16, 16);
  });
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(*ok, std::vector<float>(4, 1.0f));
}

}  // namespace
}  // namespace coremlz::engine
