#include "format/fp16.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace coremlz::format {
namespace {

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

bool IsNanHalf(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0; }

// Slow, obvious reference: the value of every finite half computed with
// ldexp, then the nearest one found by scanning (ties to the even code).
class Reference {
 public:
  Reference() {
    for (uint32_t h = 0; h < 0x7c00; ++h) {
      const int e = static_cast<int>(h >> 10);
      const int m = static_cast<int>(h & 0x3ff);
      magnitudes_.push_back(e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25));
    }
  }
  uint16_t ToHalf(float f) const {
    if (std::isnan(f)) return 0x7e00;
    const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
    const double a = std::fabs(static_cast<double>(f));
    // Anything at or above max + half an ulp (65520) rounds to infinity.
    if (a >= 65520.0) return sign | 0x7c00;
    // Binary search for the first magnitude >= a.
    size_t lo = 0, hi = magnitudes_.size() - 1;
    while (lo < hi) {
      size_t mid = (lo + hi) / 2;
      if (magnitudes_[mid] < a) lo = mid + 1; else hi = mid;
    }
    size_t best = lo;
    if (lo > 0) {
      const double up = magnitudes_[lo] - a, down = a - magnitudes_[lo - 1];
      if (down < up || (down == up && ((lo - 1) % 2 == 0))) best = lo - 1;
    }
    return static_cast<uint16_t>(sign | best);
  }
 private:
  std::vector<double> magnitudes_;
};

TEST(Fp16Test, EveryHalfWidensExactlyAndNarrowsBack) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    if (IsNanHalf(static_cast<uint16_t>(h))) {
      EXPECT_TRUE(std::isnan(f)) << h;
      const uint16_t back = FloatToHalf(f);
      EXPECT_TRUE(IsNanHalf(back)) << h;
      EXPECT_EQ(back & 0x8000, h & 0x8000) << "NaN sign lost for " << h;
      continue;
    }
    EXPECT_EQ(FloatToHalf(f), h) << "half 0x" << std::hex << h;
  }
}

TEST(Fp16Test, WideningMatchesLdexpDefinition) {
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const int e = static_cast<int>(h >> 10), m = static_cast<int>(h & 0x3ff);
    const double expected = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
    EXPECT_EQ(static_cast<double>(HalfToFloat(static_cast<uint16_t>(h))), expected);
    EXPECT_EQ(static_cast<double>(HalfToFloat(static_cast<uint16_t>(h | 0x8000))), -expected);
  }
  EXPECT_EQ(HalfToFloat(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(HalfToFloat(0xfc00), -std::numeric_limits<float>::infinity());
}

TEST(Fp16Test, MidpointsRoundToEvenAndNeighboursToNearest) {
  Reference ref;
  // Between every pair of adjacent finite halves (and max..inf), the exact
  // midpoint ties to even; one float ulp either side goes to the nearer.
  for (uint32_t h = 0; h < 0x7bff; ++h) {
    const float a = HalfToFloat(static_cast<uint16_t>(h));
    const float b = HalfToFloat(static_cast<uint16_t>(h + 1));
    const float mid = a + (b - a) / 2;  // exact: halves have 11-bit significands
    const uint16_t even = (h % 2 == 0) ? h : h + 1;
    ASSERT_EQ(FloatToHalf(mid), even) << "midpoint after half 0x" << std::hex << h;
    ASSERT_EQ(FloatToHalf(-mid), even | 0x8000);
    ASSERT_EQ(FloatToHalf(std::nextafter(mid, 0.0f)), h);
    ASSERT_EQ(FloatToHalf(std::nextafter(mid, 1e9f)), h + 1);
    ASSERT_EQ(ref.ToHalf(mid), even);
  }
}

TEST(Fp16Test, OverflowUnderflowAndSpecials) {
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(65519.996f), 0x7bff);  // just below the rounding boundary
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);     // ties to even -> infinity
  EXPECT_EQ(FloatToHalf(1e10f), 0x7c00);
  EXPECT_EQ(FloatToHalf(-1e10f), 0xfc00);
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(FloatToHalf(0.0f), 0x0000);
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -24)), 0x0001);        // smallest subnormal
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25)), 0x0000);        // exactly half of it: ties to even (0)
  EXPECT_EQ(FloatToHalf(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(FloatToHalf(std::ldexp(3.0f, -25)), 0x0002);        // 1.5 ulp ties to even (2)
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -14)), 0x0400);        // smallest normal
  EXPECT_EQ(FloatToHalf(std::ldexp(1023.5f, -24)), 0x0400);     // carry from subnormal into normal
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_TRUE(IsNanHalf(FloatToHalf(std::numeric_limits<float>::quiet_NaN())));
  // A float NaN whose payload sits only in low bits must stay NaN, not become inf.
  uint32_t sneaky = 0x7f800001;
  float f;
  std::memcpy(&f, &sneaky, 4);
  EXPECT_TRUE(IsNanHalf(FloatToHalf(f)));
}

TEST(Fp16Test, RandomFloatsMatchReference) {
  Reference ref;
  std::mt19937 rng(1234);
  std::uniform_int_distribution<uint32_t> bits;
  int checked = 0;
  for (int i = 0; i < 2000000; ++i) {
    uint32_t u = bits(rng);
    // Bias towards the half range: exponents 100..150.
    u = (u & 0x807fffff) | ((100u + (u >> 23) % 51) << 23);
    float f;
    std::memcpy(&f, &u, 4);
    ASSERT_EQ(FloatToHalf(f), ref.ToHalf(f)) << "float bits 0x" << std::hex << Bits(f);
    ++checked;
  }
  EXPECT_EQ(checked, 2000000);
}

// The bulk versions run on F16C where the CPU has it; they must give the
// scalar results bit for bit: every half, and floats across the whole bit
// space (a stride through all 2^32 patterns plus every half boundary region),
// in odd lengths so the scalar tails run too.
TEST(Fp16Test, BulkConversionsAgreeWithScalar) {
  std::printf("bulk conversions use %s\n", HasHardwareHalfConversion() ? "F16C" : "scalar code");
  std::vector<uint16_t> halves(65536);
  for (uint32_t h = 0; h < 65536; ++h) halves[h] = static_cast<uint16_t>(h);
  std::vector<float> widened(halves.size());
  HalfToFloat(halves, absl::MakeSpan(widened));
  for (uint32_t h = 0; h < 65536; ++h) {
    ASSERT_EQ(Bits(widened[h]), Bits(HalfToFloat(static_cast<uint16_t>(h)))) << std::hex << h;
  }
  std::vector<float> floats;
  for (uint64_t b = 0; b < (uint64_t{1} << 32); b += 4099) {
    uint32_t u = static_cast<uint32_t>(b);
    float f;
    std::memcpy(&f, &u, 4);
    floats.push_back(f);
  }
  // Around every half: the value, its neighbours and the midpoints to the next.
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const float v = HalfToFloat(static_cast<uint16_t>(h));
    const float next = HalfToFloat(static_cast<uint16_t>(h + 1));
    for (float f : {v, std::nextafter(v, 0.f), std::nextafter(v, 1e9f), (v + next) / 2}) {
      floats.push_back(f);
      floats.push_back(-f);
    }
  }
  floats.push_back(std::numeric_limits<float>::quiet_NaN());
  floats.push_back(-std::numeric_limits<float>::infinity());
  const size_t n = floats.size() - floats.size() % 8 + 5;  // a tail of 5
  floats.resize(n, 0.5f);
  std::vector<uint16_t> narrowed(n);
  FloatToHalf(floats, absl::MakeSpan(narrowed));
  std::vector<float> rounded = floats;
  RoundToHalf(absl::MakeSpan(rounded));
  size_t mismatches = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint16_t want = FloatToHalf(floats[i]);
    if (narrowed[i] != want || Bits(rounded[i]) != Bits(HalfToFloat(want))) {
      if (++mismatches < 10) ADD_FAILURE() << std::hex << Bits(floats[i]) << " -> " << narrowed[i] << " want " << want;
    }
  }
  EXPECT_EQ(mismatches, 0u) << "of " << n;
}

}  // namespace
}  // namespace coremlz::format

namespace coremlz::format {
namespace {

TEST(Fp16Test, DoubleToHalfRoundsOnce) {
  // Every midpoint between adjacent halves, nudged by far less than a float
  // ulp: going through float would round the nudge away and then tie.
  for (uint32_t h = 0; h < 0x7bff; ++h) {
    const double a = HalfToFloat(static_cast<uint16_t>(h));
    const double b = HalfToFloat(static_cast<uint16_t>(h + 1));
    const double mid = (a + b) / 2;
    const double nudge = (b - a) * 1e-9;
    ASSERT_EQ(DoubleToHalf(mid + nudge), h + 1) << h;
    ASSERT_EQ(DoubleToHalf(mid - nudge), h) << h;
    ASSERT_EQ(DoubleToHalf(mid), (h % 2 == 0) ? h : h + 1) << h;
    ASSERT_EQ(DoubleToHalf(-(mid + nudge)), (h + 1) | 0x8000) << h;
    ASSERT_EQ(DoubleToHalf(a), h);
  }
  EXPECT_EQ(DoubleToHalf(65519.999), 0x7bff);
  EXPECT_EQ(DoubleToHalf(65520.0), 0x7c00);
  EXPECT_EQ(DoubleToHalf(1e300), 0x7c00);
  EXPECT_EQ(DoubleToHalf(-0.0), 0x8000);
  EXPECT_EQ(DoubleToHalf(1e-300), 0x0000);
}

}  // namespace
}  // namespace coremlz::format
