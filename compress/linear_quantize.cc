#include "compress/linear_quantize.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "compress/reduce.h"

namespace coremlz::compress {

CodeRange QuantizedRange(int bits, bool is_signed, bool symmetric) {
  const int32_t full = 1 << bits;
  if (is_signed) {
    const int32_t hi = full / 2 - 1;
    return {symmetric ? -hi : -full / 2, hi};
  }
  return {0, symmetric ? full - 2 : full - 1};
}

namespace {

constexpr int64_t kChunk = 1024;

// numpy's float -> int cast of a NaN gives 0 on the platforms Core ML tools
// runs on; clip first for everything else. Written as selects so that the
// loops using it vectorize.
inline int32_t ToCode(float v, float lo, float hi) {
  float c = v < lo ? lo : v;
  c = c > hi ? hi : c;
  c = v == v ? c : 0.0f;
  return static_cast<int32_t>(c);
}

int32_t ToCode(float v, CodeRange r) { return ToCode(v, static_cast<float>(r.min), static_cast<float>(r.max)); }

}  // namespace

absl::StatusOr<LinearQuantized> LinearQuantize(absl::Span<const float> w, const BlockGrid& grid,
                                               const LinearQuantizeOptions& o) {
  if (o.bits != 4 && o.bits != 8) {
    return absl::InvalidArgumentError(absl::StrCat("linear quantization supports 4 or 8 bits, not ", o.bits));
  }
  if (static_cast<int64_t>(w.size()) != grid.num_elements()) {
    return absl::InvalidArgumentError("weight count does not match the block grid");
  }
  const Precision p = o.precision;
  const CodeRange range = QuantizedRange(o.bits, o.is_signed, o.symmetric);
  const int64_t nb = grid.num_blocks();

  std::vector<float> lo(nb, std::numeric_limits<float>::infinity());
  std::vector<float> hi(nb, -std::numeric_limits<float>::infinity());
  grid.ForEachRun([&](int64_t b, int64_t start, int64_t len) { MinMax(w.subspan(start, len), &lo[b], &hi[b]); });

  LinearQuantized out;
  out.bits = o.bits;
  out.is_signed = o.is_signed;
  out.scale.resize(nb);
  const bool has_zero_point = !(o.symmetric && o.is_signed);
  if (has_zero_point) out.zero_point.resize(nb);
  const float qspan = static_cast<float>(range.max - range.min);
  for (int64_t b = 0; b < nb; ++b) {
    float vmin = lo[b], vmax = hi[b];
    if (o.symmetric) {
      const float m = std::max(std::fabs(vmin), std::fabs(vmax));
      vmin = -m;
      vmax = m;
    } else {
      vmin = std::min(0.0f, vmin);
      vmax = std::max(0.0f, vmax);
    }
    const float width = R(p, vmax - vmin);
    out.scale[b] = R(p, width / qspan);
    if (!has_zero_point) continue;
    if (o.symmetric) {
      out.zero_point[b] = range.max / 2;  // unsigned symmetric: qmax // 2 = 127 or 7
    } else {
      float num = R(p, R(p, static_cast<float>(range.min) * vmax) - R(p, static_cast<float>(range.max) * vmin));
      float zp = RoundHalfEven(R(p, num / width));
      if (!std::isfinite(num) && width > 0) {
        // fp16 overflow (|w| > ~257 for 8 bits): numpy gets a NaN zero point
        // and quantizes the whole block to 0. Compute it in fp32 instead - a
        // deliberate difference from Core ML tools that keeps the weights.
        num = static_cast<float>(range.min) * vmax - static_cast<float>(range.max) * vmin;
        zp = RoundHalfEven(num / width);
      }
      out.zero_point[b] = ToCode(zp, range);
    }
  }

  out.codes.resize(w.size());
  const uint8_t mask = static_cast<uint8_t>((1u << o.bits) - 1u);
  bool stopped = false;
  grid.ForEachRun([&](int64_t b, int64_t start, int64_t len) {
    if (stopped || (stopped = Stopped(o.cancel, 4 * len))) return;
    const float scale = out.scale[b];
    const float zp = has_zero_point ? static_cast<float>(out.zero_point[b]) : 0.0f;
    // In chunks: divide, round the quotients to the working precision in
    // bulk, then round, shift and clip (three vectorizable passes).
    const float lo = static_cast<float>(range.min), hi = static_cast<float>(range.max);
    float quotient[kChunk];
    for (int64_t c = start; c < start + len; c += kChunk) {
      const int64_t n = std::min(kChunk, start + len - c);
      const float* in = w.data() + c;
      uint8_t* codes = out.codes.data() + c;
      for (int64_t j = 0; j < n; ++j) quotient[j] = in[j] / scale;
      R(p, absl::MakeSpan(quotient, n));
      for (int64_t j = 0; j < n; ++j) {
        // round(w / scale) and the zero point are rounded separately, then
        // clipped, as Core ML tools do (NaN from 0/0 stays NaN -> code 0).
        codes[j] = static_cast<uint8_t>(ToCode(RoundHalfEven(quotient[j]) + zp, lo, hi)) & mask;
      }
    }
  });
  if (stopped) return CancelledStatus();
  return out;
}

void LinearDequantize(const LinearQuantized& q, const BlockGrid& grid, Precision precision,
                      absl::Span<float> out) {
  grid.ForEachRun([&](int64_t b, int64_t start, int64_t len) {
    const float scale = q.scale[b];
    const int32_t zp = q.zero_point.empty() ? 0 : q.zero_point[b];
    float* dst = out.data() + start;
    const uint8_t* codes = q.codes.data() + start;
    if (q.is_signed) {
      const int shift = 8 - q.bits;  // sign-extend 4-bit codes
      for (int64_t i = 0; i < len; ++i) {
        const int32_t v = static_cast<int8_t>(static_cast<uint8_t>(codes[i] << shift)) >> shift;
        dst[i] = scale * static_cast<float>(v - zp);
      }
    } else {
      for (int64_t i = 0; i < len; ++i) dst[i] = scale * static_cast<float>(static_cast<int32_t>(codes[i]) - zp);
    }
    R(precision, absl::MakeSpan(dst, len));
  });
}

}  // namespace coremlz::compress
