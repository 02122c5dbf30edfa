// Arithmetic precision of a compression kernel.
//
// Core ML tools compute quantization parameters in the weight's own dtype:
// for fp16 weights every intermediate (a - b, a / b, ...) is rounded to fp16,
// the way numpy's float16 arithmetic works (compute in fp32, round to
// nearest-even fp16). Kernels reproduce that with R(), so that quantized
// codes, scales and palettes match Core ML tools bit for bit.
#ifndef COREMLZ_COMPRESS_PRECISION_H_
#define COREMLZ_COMPRESS_PRECISION_H_

#include "absl/types/span.h"
#include "format/fp16.h"

namespace coremlz::compress {

enum class Precision { kFloat32, kFloat16 };

// Rounds an fp32 intermediate to the working precision.
inline float R(Precision p, float v) { return p == Precision::kFloat16 ? format::RoundToHalf(v) : v; }
// The same over a span, in place (hardware conversion where available).
inline void R(Precision p, absl::Span<float> v) {
  if (p == Precision::kFloat16) format::RoundToHalf(v);
}

// Rounds half to even, like numpy.round / rint. Adding and removing 2^23
// leaves no fraction bits, and the addition rounds to nearest-even; values
// at or beyond 2^23 are integers already (NaN and inf pass through). Unlike
// a call to nearbyintf, compilers vectorize this (it relies on strict IEEE
// arithmetic: never build with -ffast-math). Equal to nearbyintf for every
// float (tests/kernels/precision_test.cc).
inline float RoundHalfEven(float v) {
  const float a = __builtin_fabsf(v);
  const float r = __builtin_copysignf((a + 8388608.0f) - 8388608.0f, v);
  return a < 8388608.0f ? r : v;  // a select, not a branch
}

}  // namespace coremlz::compress

#endif  // COREMLZ_COMPRESS_PRECISION_H_
