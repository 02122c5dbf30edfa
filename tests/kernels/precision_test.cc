// The rounding primitives every kernel relies on, against the C library.
#include "compress/precision.h"

#include <cfenv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "gtest/gtest.h"

namespace coremlz::compress {
namespace {

float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// nearbyintf in the default mode is the reference: bit-equal results
// (including -0.0 and NaN) for every float near the integers that matter -
// all values with |v| < 2^12 on a fine grid, every float pattern on a
// stride, and the boundaries at 2^23.
TEST(RoundHalfEven, MatchesNearbyint) {
  ASSERT_EQ(std::fegetround(), FE_TONEAREST);
  size_t checked = 0, mismatches = 0;
  auto check = [&](float v) {
    const float want = std::nearbyintf(v), got = RoundHalfEven(v);
    const bool same = Bits(want) == Bits(got) || (std::isnan(want) && std::isnan(got));
    if (!same && ++mismatches < 10) ADD_FAILURE() << v << ": " << got << " want " << want;
    ++checked;
  };
  for (uint64_t b = 0; b < (uint64_t{1} << 32); b += 997) check(FromBits(static_cast<uint32_t>(b)));
  for (float v = -4096.f; v <= 4096.f; v += 0.125f) {
    check(v);
    check(std::nextafter(v, 1e9f));
    check(std::nextafter(v, -1e9f));
  }
  for (float v : {8388607.5f, 8388608.f, 8388609.f, -8388607.5f, 4194303.5f, -4194304.5f, 0.5f, 1.5f, 2.5f, -0.5f,
                  -0.f, 0.f, std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                  std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::denorm_min()}) {
    check(v);
  }
  EXPECT_EQ(mismatches, 0u) << "of " << checked;
}

TEST(RoundToWorkingPrecision, SpanEqualsScalar) {
  std::vector<float> v;
  for (int i = -5000; i < 5000; ++i) v.push_back(i * 0.01237f);
  std::vector<float> bulk = v;
  R(Precision::kFloat16, absl::MakeSpan(bulk));
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(Bits(bulk[i]), Bits(R(Precision::kFloat16, v[i]))) << v[i];
  std::vector<float> same = v;
  R(Precision::kFloat32, absl::MakeSpan(same));
  EXPECT_EQ(same, v);
}

}  // namespace
}  // namespace coremlz::compress
