// Helpers shared by the compression-kernel tests: shapes and coordinates,
// an independent fp16 / round-half-even emulation, and random tensors. The
// references in the tests are written with these plain helpers only; they
// call nothing from compress/ except the function under test.
#ifndef COREMLZ_TESTS_KERNELS_KERNEL_TEST_UTIL_H_
#define COREMLZ_TESTS_KERNELS_KERNEL_TEST_UTIL_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "format/fp16.h"

namespace coremlz::kernel_test {

using Shape = std::vector<int64_t>;

inline int64_t NumElements(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// Row-major coordinates of a flat index, computed by repeated division from
// the last axis (deliberately not via precomputed strides).
inline std::vector<int64_t> Unravel(int64_t flat, const Shape& s) {
  std::vector<int64_t> c(s.size(), 0);
  for (size_t a = s.size(); a > 0; --a) {
    c[a - 1] = flat % s[a - 1];
    flat /= s[a - 1];
  }
  return c;
}

inline int64_t Ravel(const std::vector<int64_t>& c, const Shape& s) {
  int64_t flat = 0;
  for (size_t a = 0; a < s.size(); ++a) flat = flat * s[a] + c[a];
  return flat;
}

inline std::string ShapeStr(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out + "]";
}

inline uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Working precision emulation: numpy float16 arithmetic is fp32 arithmetic
// followed by a round-to-nearest-even to half.
enum class Prec { k16, k32 };
inline float H(float v) { return format::RoundToHalf(v); }
inline float Rd(Prec p, float v) { return p == Prec::k16 ? H(v) : v; }
// numpy astype(float16 / float32) of a float64: a single rounding.
inline float CastDouble(Prec p, double v) {
  return p == Prec::k16 ? format::HalfToFloat(format::DoubleToHalf(v)) : static_cast<float>(v);
}

// np.round / rint: round half to even, written out by hand (no reliance on
// the FP rounding mode). Non-finite values pass through.
inline double RoundHalfEvenRef(double x) {
  if (!std::isfinite(x)) return x;
  const double f = std::floor(x);
  const double d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return std::fmod(f, 2.0) == 0.0 ? f : f + 1;
}

// Unit in the last place of |v| in the given precision (for error bounds).
inline double Ulp(Prec p, double v) {
  v = std::fabs(v);
  if (p == Prec::k16) {
    if (v < std::ldexp(1.0, -14)) return std::ldexp(1.0, -24);
    int e;
    std::frexp(v, &e);  // v = m * 2^e, m in [0.5, 1)
    return std::ldexp(1.0, e - 11);
  }
  if (v < std::ldexp(1.0, -126)) return std::ldexp(1.0, -149);
  int e;
  std::frexp(v, &e);
  return std::ldexp(1.0, e - 24);
}

// Random values of several flavours, already representable in `p`.
enum class Dist {
  kNormal,      // N(0, 1)
  kUniformPos,  // U(0.5, 3)
  kHugeRange,   // log-uniform magnitude in [1e-6, 6e4], random sign
  kHugePos,     // log-uniform magnitude in [1e-6, 6e4], positive
  kSmallInts,   // integers in [-5, 5]
  kFewValues,   // 3 distinct values
  kConstant,    // one value (non-zero)
  kZeros,       // all zero (with some -0.0)
};

inline std::vector<float> RandomTensor(std::mt19937_64& rng, int64_t n, Dist d, Prec p) {
  std::vector<float> v(n);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const float c = static_cast<float>(0.25 + 3 * unit(rng)) * (unit(rng) < 0.5 ? -1.f : 1.f);
  const float few[3] = {-1.5f, 0.375f, 2.25f};
  for (int64_t i = 0; i < n; ++i) {
    double x = 0;
    switch (d) {
      case Dist::kNormal: x = normal(rng); break;
      case Dist::kUniformPos: x = 0.5 + 2.5 * unit(rng); break;
      case Dist::kHugeRange:
      case Dist::kHugePos: {
        x = std::exp(std::log(1e-6) + unit(rng) * (std::log(6e4) - std::log(1e-6)));
        if (d == Dist::kHugeRange && unit(rng) < 0.5) x = -x;
        break;
      }
      case Dist::kSmallInts: x = std::floor(unit(rng) * 11) - 5; break;
      case Dist::kFewValues: x = few[static_cast<int>(unit(rng) * 3) % 3]; break;
      case Dist::kConstant: x = c; break;
      case Dist::kZeros: x = unit(rng) < 0.3 ? -0.0 : 0.0; break;
    }
    v[i] = Rd(p, static_cast<float>(x));
  }
  return v;
}

// A random shape of the given rank with dims in [1, max_dim].
inline Shape RandomShape(std::mt19937_64& rng, int rank, int max_dim) {
  Shape s(rank);
  for (auto& d : s) d = 1 + static_cast<int64_t>(rng() % max_dim);
  return s;
}

inline std::vector<int64_t> Divisors(int64_t n) {
  std::vector<int64_t> d;
  for (int64_t k = 1; k <= n; ++k)
    if (n % k == 0) d.push_back(k);
  return d;
}

}  // namespace coremlz::kernel_test

#endif  // COREMLZ_TESTS_KERNELS_KERNEL_TEST_UTIL_H_
