// Arithmetic precision of a compression kernel.
//
// Core ML tools compute quantization parameters in the weight's own dtype:
// for fp16 weights every intermediate (a - b, a / b, ...) is rounded to fp16,
// the way numpy's float16 arithmetic works (compute in fp32, round to
// nearest-even fp16). Kernels reproduce that with R(), so that quantized
// codes, scales and palettes match Core ML tools bit for bit.
#ifndef COREMLZ_COMPRESS_PRECISION_H_
#define COREMLZ_COMPRESS_PRECISION_H_

#include "format/fp16.h"

namespace coremlz::compress {

enum class Precision { kFloat32, kFloat16 };

// Rounds an fp32 intermediate to the working precision.
inline float R(Precision p, float v) { return p == Precision::kFloat16 ? format::RoundToHalf(v) : v; }

// Rounds half to even, like numpy.round / rint, for finite inputs.
inline float RoundHalfEven(float v) {
  // nearbyint honours the default rounding mode (to nearest, ties to even).
  return __builtin_nearbyintf(v);
}

}  // namespace coremlz::compress

#endif  // COREMLZ_COMPRESS_PRECISION_H_
