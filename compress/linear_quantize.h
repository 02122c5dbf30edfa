// Affine (linear) quantization of a weight tensor over a block grid, with
// Core ML tools' conventions:
//   symmetric:  range [-m, m], m = max|w| per block; signed codes in
//               [-(2^(n-1)-1), 2^(n-1)-1], no zero point (unsigned: codes in
//               [0, 2^n - 2] with zero point 2^(n-1) - 1);
//   asymmetric: range [min(0, lo), max(0, hi)], full code range, zero point
//               round((qmin*hi - qmax*lo) / (hi - lo)) clipped to the range;
//   scale = (hi - lo) / (qmax - qmin); q = round(w / scale) + zero_point,
//   rounded half to even and clipped; all arithmetic in the weight dtype.
// Dequantization: w' = scale * (q - zero_point).
#ifndef COREMLZ_COMPRESS_LINEAR_QUANTIZE_H_
#define COREMLZ_COMPRESS_LINEAR_QUANTIZE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "compress/block_grid.h"
#include "compress/cancel.h"
#include "compress/precision.h"

namespace coremlz::compress {

struct LinearQuantizeOptions {
  int bits = 8;          // 4 or 8
  bool is_signed = true;  // int vs uint codes
  bool symmetric = true;  // linear_symmetric vs linear
  Precision precision = Precision::kFloat16;
  // Optional: polled between blocks; when it says stop, LinearQuantize
  // returns CANCELLED.
  CancelCheck* cancel = nullptr;
};

struct LinearQuantized {
  // Codes as their raw low bits (two's complement for signed types): ready
  // for byte or nibble packing. Use CodeValue() for the integer.
  std::vector<uint8_t> codes;
  std::vector<float> scale;         // one per block, exact in the weight dtype
  std::vector<int32_t> zero_point;  // one per block; empty when there is none
  int bits = 8;
  bool is_signed = true;

  int32_t CodeValue(size_t i) const {
    if (!is_signed) return codes[i];
    const int shift = 8 - bits;
    return static_cast<int8_t>(static_cast<uint8_t>(codes[i] << shift)) >> shift;
  }
};

// Inputs must be finite (the caller reports NaN/Inf with the weight's name).
absl::StatusOr<LinearQuantized> LinearQuantize(absl::Span<const float> weights, const BlockGrid& grid,
                                               const LinearQuantizeOptions& options);

// w' = scale * (q - zero_point) per element, computed in fp32 and rounded to
// `precision` once (Core ML evaluates the product exactly in fp32 for 8-bit
// codes before the final rounding).
void LinearDequantize(const LinearQuantized& q, const BlockGrid& grid, Precision precision,
                      absl::Span<float> out);

// The code range for a bit width / signedness / mode.
struct CodeRange {
  int32_t min, max;
};
CodeRange QuantizedRange(int bits, bool is_signed, bool symmetric);

}  // namespace coremlz::compress

#endif  // COREMLZ_COMPRESS_LINEAR_QUANTIZE_H_
