#include "format/fp16.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace coremlz::format {
namespace {

uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

float BitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

}  // namespace

uint16_t FloatToHalf(float value) {
  const uint32_t bits = FloatBits(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t exponent = (bits >> 23) & 0xffu;
  uint32_t mantissa = bits & 0x7fffffu;

  if (exponent == 0xff) {
    if (mantissa == 0) return sign | 0x7c00u;  // infinity
    // NaN: keep the top 10 payload bits and force the quiet bit so the result
    // can never collapse into infinity.
    return static_cast<uint16_t>(sign | 0x7c00u | 0x0200u | (mantissa >> 13));
  }

  // Unbiased exponent; halves have bias 15, floats 127.
  const int32_t e = static_cast<int32_t>(exponent) - 127;
  if (e > 15) return sign | 0x7c00u;  // overflow to infinity

  if (e >= -14) {
    // Normal half. Round the 23-bit mantissa to 10 bits, ties to even; a carry
    // out of the mantissa correctly bumps the exponent (and may reach inf).
    uint32_t half = (static_cast<uint32_t>(e + 15) << 10) | (mantissa >> 13);
    const uint32_t rest = mantissa & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
  }

  // Subnormal half (or zero): value = m * 2^-24 with m < 1024.
  if (e < -25) return sign;  // below half of the smallest subnormal: rounds to 0
  mantissa |= 0x800000u;     // implicit leading one
  // The float is mantissa * 2^(e-23); counted in units of 2^-24 (the smallest
  // subnormal) that is mantissa * 2^(e+1): a right shift by -(e+1).
  const int shift = -e - 1;  // 14..24
  uint32_t half = mantissa >> shift;
  const uint32_t rest = mantissa & ((1u << shift) - 1u);
  const uint32_t halfway = 1u << (shift - 1);
  if (rest > halfway || (rest == halfway && (half & 1u))) ++half;
  return static_cast<uint16_t>(sign | half);
}

float HalfToFloat(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1fu;
  const uint32_t mantissa = half & 0x3ffu;
  if (exponent == 0x1f) return BitsToFloat(sign | 0x7f800000u | (mantissa << 13));
  if (exponent != 0) return BitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
  if (mantissa == 0) return BitsToFloat(sign);
  // Subnormal: exact in float as mantissa * 2^-24.
  float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
  return sign ? -magnitude : magnitude;
}

uint16_t DoubleToHalf(double value) {
  if (std::isnan(value)) return FloatToHalf(static_cast<float>(value));
  const uint16_t sign = std::signbit(value) ? 0x8000 : 0;
  const double a = std::fabs(value);
  if (a >= 65520.0) return sign | 0x7c00;  // max half + half an ulp and beyond
  // Float has 13 more significand bits than half, so the float nearest to
  // `a` is within one half-ulp step of the answer; settle any double rounding
  // by comparing the exact distances to the two neighbouring halves.
  uint16_t h = FloatToHalf(static_cast<float>(a));
  if (h > 0x7bff) h = 0x7bff;
  const double v = HalfToFloat(h);
  if (v == a) return sign | h;
  const uint16_t other = v < a ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h - 1);
  const double w = (other > 0x7bff) ? 65536.0 : HalfToFloat(other);
  const double dv = std::fabs(a - v), dw = std::fabs(a - w);
  uint16_t best = h;
  if (dw < dv || (dw == dv && (other & 1) == 0)) best = other;
  if (best > 0x7bff) best = 0x7c00;
  return sign | best;
}

namespace {

#if defined(__x86_64__)
// F16C converts 8 values per instruction with IEEE round-to-nearest-even,
// subnormals and NaN quieting exactly as the scalar code does. Compiled for
// AVX+F16C only here and chosen at run time, so the binary still runs on any
// x86-64.
__attribute__((target("avx,f16c"))) void HalfToFloatF16c(const uint16_t* in, float* out, size_t n) {
  size_t i = 0;
  const __m128i exponent = _mm_set1_epi16(0x7c00);
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    // The instruction quiets signalling NaNs; the scalar code (like numpy)
    // keeps their bits. Blocks holding an inf or NaN take the scalar path.
    if (_mm_movemask_epi8(_mm_cmpeq_epi16(_mm_and_si128(h, exponent), exponent)) != 0) {
      for (size_t j = i; j < i + 8; ++j) out[j] = HalfToFloat(in[j]);
      continue;
    }
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) out[i] = HalfToFloat(in[i]);
}

__attribute__((target("avx,f16c"))) void FloatToHalfF16c(const float* in, uint16_t* out, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
  for (; i < n; ++i) out[i] = FloatToHalf(in[i]);
}

__attribute__((target("avx,f16c"))) void RoundToHalfF16c(float* v, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(v + i), _MM_FROUND_TO_NEAREST_INT);
    _mm256_storeu_ps(v + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) v[i] = RoundToHalf(v[i]);
}

// CPUID leaf 1: ECX bit 27 OSXSAVE, 28 AVX, 29 F16C; and the OS must save
// the YMM registers (XCR0 bits 1 and 2). Not __builtin_cpu_supports: clang 14
// does not know "f16c".
bool DetectF16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  constexpr unsigned kOsxsave = 1u << 27, kAvx = 1u << 28, kF16c = 1u << 29;
  if ((ecx & (kOsxsave | kAvx | kF16c)) != (kOsxsave | kAvx | kF16c)) return false;
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  return (xcr0_lo & 6u) == 6u;
}
#else
bool DetectF16c() { return false; }
#endif

// COREMLZ_NO_F16C=1 forces the scalar code (for comparisons and benchmarks).
const bool kUseF16c = DetectF16c() && std::getenv("COREMLZ_NO_F16C") == nullptr;

}  // namespace

bool HasHardwareHalfConversion() { return kUseF16c; }

void HalfToFloat(absl::Span<const uint16_t> in, absl::Span<float> out) {
#if defined(__x86_64__)
  if (kUseF16c) return HalfToFloatF16c(in.data(), out.data(), in.size());
#endif
  for (size_t i = 0; i < in.size(); ++i) out[i] = HalfToFloat(in[i]);
}

void FloatToHalf(absl::Span<const float> in, absl::Span<uint16_t> out) {
#if defined(__x86_64__)
  if (kUseF16c) return FloatToHalfF16c(in.data(), out.data(), in.size());
#endif
  for (size_t i = 0; i < in.size(); ++i) out[i] = FloatToHalf(in[i]);
}

void RoundToHalf(absl::Span<float> values) {
#if defined(__x86_64__)
  if (kUseF16c) return RoundToHalfF16c(values.data(), values.size());
#endif
  for (float& v : values) v = RoundToHalf(v);
}

}  // namespace coremlz::format
