// IEEE 754 binary16 <-> binary32 conversion.
//
// Float -> half rounds to nearest, ties to even; handles subnormals, overflow
// to infinity, and keeps NaNs NaN (sign and the top payload bits survive, the
// quiet bit is set). Half -> float is exact.
#ifndef COREMLZ_FORMAT_FP16_H_
#define COREMLZ_FORMAT_FP16_H_

#include <cstdint>

#include "absl/types/span.h"

namespace coremlz::format {

uint16_t FloatToHalf(float value);
float HalfToFloat(uint16_t half);

// Bulk versions; `out` must be at least as long as `in`. They use the CPU's
// conversion instructions (x86 F16C) when it has them, with results
// identical to the scalar functions (tests/format/fp16_test.cc compares them
// over every half and a sweep of floats).
void HalfToFloat(absl::Span<const uint16_t> in, absl::Span<float> out);
void FloatToHalf(absl::Span<const float> in, absl::Span<uint16_t> out);
// Rounds every value to the nearest half, in place.
void RoundToHalf(absl::Span<float> values);
// Whether the bulk versions run on conversion instructions.
bool HasHardwareHalfConversion();

// Double -> half with a single rounding (nearest, ties to even), as numpy's
// float64 -> float16 cast does. Not the same as going through float.
uint16_t DoubleToHalf(double value);

// Rounds a float to the nearest representable half value (as a float).
inline float RoundToHalf(float value) { return HalfToFloat(FloatToHalf(value)); }

}  // namespace coremlz::format

#endif  // COREMLZ_FORMAT_FP16_H_
