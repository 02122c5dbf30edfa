#include "compress/reduce.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace coremlz::compress {
bool AllFinite(absl::Span<const float> values) {
  const float* p = values.data();
  const size_t n = values.size();
  uint32_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, p + i, 4);
    bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);  // exponent all ones: inf or NaN
  }
  return bad == 0;
}

void MinMax(absl::Span<const float> values, float* lo, float* hi) {
  const float* p = values.data();
  const size_t n = values.size();
  size_t i = 0;
  float l = *lo, h = *hi;
#if defined(__SSE2__)
  // minps(v, l) is exactly "v < l ? v : l" (l when v is NaN); four
  // registers of partial results hide the instruction latency.
  __m128 l4[4], h4[4];
  for (int k = 0; k < 4; ++k) {
    l4[k] = _mm_set1_ps(l);
    h4[k] = _mm_set1_ps(h);
  }
  for (; i + 16 <= n; i += 16) {
    for (int k = 0; k < 4; ++k) {
      const __m128 v = _mm_loadu_ps(p + i + 4 * k);
      l4[k] = _mm_min_ps(v, l4[k]);
      h4[k] = _mm_max_ps(v, h4[k]);
    }
  }
  float lanes_l[16], lanes_h[16];
  for (int k = 0; k < 4; ++k) {
    _mm_storeu_ps(lanes_l + 4 * k, l4[k]);
    _mm_storeu_ps(lanes_h + 4 * k, h4[k]);
  }
  for (int k = 0; k < 16; ++k) {
    l = std::min(l, lanes_l[k]);
    h = std::max(h, lanes_h[k]);
  }
#endif
  for (; i < n; ++i) {
    l = std::min(l, p[i]);
    h = std::max(h, p[i]);
  }
  *lo = l;
  *hi = h;
}

}  // namespace coremlz::compress
