#include "compress/linear_quantize.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

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

// numpy's float -> int cast of a NaN gives 0 on the platforms Core ML tools
// runs on; clip first for everything else.
int32_t ToCode(float v, CodeRange r) {
  if (std::isnan(v)) return 0;
  if (v < static_cast<float>(r.min)) return r.min;
  if (v > static_cast<float>(r.max)) return r.max;
  return static_cast<int32_t>(v);
}

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
  grid.ForEachRun([&](int64_t b, int64_t start, int64_t len) {
    float l = lo[b], h = hi[b];
    for (int64_t i = start; i < start + len; ++i) {
      l = std::min(l, w[i]);
      h = std::max(h, w[i]);
    }
    lo[b] = l;
    hi[b] = h;
  });

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
  grid.ForEachRun([&](int64_t b, int64_t start, int64_t len) {
    const float scale = out.scale[b];
    const float zp = has_zero_point ? static_cast<float>(out.zero_point[b]) : 0.0f;
    for (int64_t i = start; i < start + len; ++i) {
      // round(w / scale) and the zero point are rounded separately, then
      // clipped, as Core ML tools do (NaN from 0/0 stays NaN -> code 0).
      float q = RoundHalfEven(R(p, w[i] / scale)) + zp;
      out.codes[i] = static_cast<uint8_t>(ToCode(q, range)) & mask;
    }
  });
  return out;
}

void LinearDequantize(const LinearQuantized& q, const BlockGrid& grid, Precision precision,
                      absl::Span<float> out) {
  grid.ForEachRun([&](int64_t b, int64_t start, int64_t len) {
    const float scale = q.scale[b];
    const int32_t zp = q.zero_point.empty() ? 0 : q.zero_point[b];
    for (int64_t i = start; i < start + len; ++i) {
      out[i] = R(precision, scale * static_cast<float>(q.CodeValue(i) - zp));
    }
  });
}

}  // namespace coremlz::compress
