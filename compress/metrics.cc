#include "compress/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "format/fp16.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace coremlz::compress {

ErrorMetrics CompareTensors(absl::Span<const float> x, absl::Span<const float> y) {
  ErrorAccumulator acc;
  acc.Add(x, y);
  return acc.Result();
}

void ErrorAccumulator::Add(absl::Span<const float> x, absl::Span<const float> y) {
  // Four lanes by element index (mod 4, counted over every piece added): one
  // running sum was a chain of dependent additions, 4 cycles an element, as
  // long as the quantization itself. The lanes are combined in Result, so
  // the sums round differently from one sequential sum (relative ~1e-16),
  // but the same for any split into pieces.
  const float* xp = x.data();
  const float* yp = y.data();
  const size_t n = x.size();
  auto step = [&](size_t lane, size_t i) {  // head and tail, through the members
    const double a = xp[i], d = a - static_cast<double>(yp[i]);
    signal_[lane] += a * a;
    peak_[lane] = std::max(peak_[lane], a * a);
    noise_[lane] += d * d;
    max_err_[lane] = std::max(max_err_[lane], std::fabs(d));
  };
  size_t i = 0;
  for (; i < n && (count_ + i) % 4 != 0; ++i) step((count_ + i) % 4, i);
#if defined(__SSE2__)
  // The body two lanes to a register (16 scalar accumulators spilled): the
  // same operations per lane as `step`, so the same sums. max_pd(v, m) is
  // "v > m ? v : m", std::max(m, v) when v is not NaN, and m when it is.
  __m128d s01 = _mm_loadu_pd(signal_), s23 = _mm_loadu_pd(signal_ + 2);
  __m128d p01 = _mm_loadu_pd(peak_), p23 = _mm_loadu_pd(peak_ + 2);
  __m128d n01 = _mm_loadu_pd(noise_), n23 = _mm_loadu_pd(noise_ + 2);
  __m128d e01 = _mm_loadu_pd(max_err_), e23 = _mm_loadu_pd(max_err_ + 2);
  const __m128d sign = _mm_set1_pd(-0.0);
  for (; i + 4 <= n; i += 4) {
    const __m128 x4 = _mm_loadu_ps(xp + i), y4 = _mm_loadu_ps(yp + i);
    const __m128d a01 = _mm_cvtps_pd(x4), a23 = _mm_cvtps_pd(_mm_movehl_ps(x4, x4));
    const __m128d d01 = _mm_sub_pd(a01, _mm_cvtps_pd(y4));
    const __m128d d23 = _mm_sub_pd(a23, _mm_cvtps_pd(_mm_movehl_ps(y4, y4)));
    const __m128d q01 = _mm_mul_pd(a01, a01), q23 = _mm_mul_pd(a23, a23);
    s01 = _mm_add_pd(s01, q01);
    s23 = _mm_add_pd(s23, q23);
    p01 = _mm_max_pd(q01, p01);
    p23 = _mm_max_pd(q23, p23);
    n01 = _mm_add_pd(n01, _mm_mul_pd(d01, d01));
    n23 = _mm_add_pd(n23, _mm_mul_pd(d23, d23));
    e01 = _mm_max_pd(_mm_andnot_pd(sign, d01), e01);
    e23 = _mm_max_pd(_mm_andnot_pd(sign, d23), e23);
  }
  _mm_storeu_pd(signal_, s01), _mm_storeu_pd(signal_ + 2, s23);
  _mm_storeu_pd(peak_, p01), _mm_storeu_pd(peak_ + 2, p23);
  _mm_storeu_pd(noise_, n01), _mm_storeu_pd(noise_ + 2, n23);
  _mm_storeu_pd(max_err_, e01), _mm_storeu_pd(max_err_ + 2, e23);
#endif
  for (; i < n; ++i) step((count_ + i) % 4, i);
  count_ += n;
}

ErrorMetrics ErrorAccumulator::Result() const {
  ErrorMetrics m;
  if (count_ == 0) return m;
  const double n = static_cast<double>(count_);
  const double signal = (signal_[0] + signal_[1]) + (signal_[2] + signal_[3]);
  const double noise = (noise_[0] + noise_[1]) + (noise_[2] + noise_[3]);
  const double peak = std::max(std::max(peak_[0], peak_[1]), std::max(peak_[2], peak_[3]));
  m.mse = noise / n;
  m.max_abs_error = std::max(std::max(max_err_[0], max_err_[1]), std::max(max_err_[2], max_err_[3]));
  const double inf = std::numeric_limits<double>::infinity();
  if (noise == 0) {
    m.snr_db = m.psnr_db = inf;
  } else {
    m.snr_db = signal == 0 ? -inf : 10 * std::log10((signal / n) / m.mse);
    m.psnr_db = peak == 0 ? -inf : 10 * std::log10(peak / m.mse);
  }
  return m;
}

double Sparsity(absl::Span<const float> values) {
  if (values.empty()) return 0;
  size_t zeros = 0;
  for (float v : values) zeros += v == 0.0f;
  return static_cast<double>(zeros) / values.size();
}

uint64_t DistinctCount(absl::Span<const float> values) {
  // Fast path: values that are all halves (fp16 weights and whatever they
  // decompress to) are counted in a 65536-bit set; one that is not a half
  // sends the whole count to the bit-pattern count below.
  std::vector<uint64_t> seen(65536 / 64, 0);
  bool all_halves = true;
  uint16_t halves[1024];
  float widened[1024];
  for (size_t i = 0; i < values.size() && all_halves; i += 1024) {
    const size_t n = std::min<size_t>(1024, values.size() - i);
    format::FloatToHalf(values.subspan(i, n), absl::MakeSpan(halves, n));
    format::HalfToFloat(absl::MakeConstSpan(halves, n), absl::MakeSpan(widened, n));
    for (size_t j = 0; j < n; ++j) {
      all_halves &= widened[j] == values[i + j];        // NaN never compares equal: also the slow path
      const uint16_t h = halves[j] == 0x8000 ? 0 : halves[j];  // fold -0.0
      seen[h >> 6] |= uint64_t{1} << (h & 63);
    }
  }
  if (all_halves) {
    uint64_t count = 0;
    for (uint64_t word : seen) count += static_cast<uint64_t>(__builtin_popcountll(word));
    return count;
  }
  return DistinctBitPatterns(values);
}

// Exact and linear, where a sort was O(n log n) and dominated the report of
// fp32 weights: a counting sort by the upper 16 bits of each value's bit
// pattern, then each bucket's lower halves counted in a 65536-bit set. Extra
// memory: 2 bytes per value plus 512 KB.
uint64_t DistinctBitPatterns(absl::Span<const float> values) {
  const size_t n = values.size();
  auto bits = [&](size_t i) {
    uint32_t u;
    std::memcpy(&u, &values[i], 4);
    return u == 0x80000000u ? 0u : u;  // fold -0.0
  };
  std::vector<uint64_t> start(65536 + 1, 0);
  for (size_t i = 0; i < n; ++i) ++start[(bits(i) >> 16) + 1];
  for (size_t b = 0; b < 65536; ++b) start[b + 1] += start[b];
  std::vector<uint16_t> low(n);
  {
    std::vector<uint64_t> next(start.begin(), start.end() - 1);
    for (size_t i = 0; i < n; ++i) {
      const uint32_t u = bits(i);
      low[next[u >> 16]++] = static_cast<uint16_t>(u);
    }
  }
  std::vector<uint64_t> seen(65536 / 64, 0);
  uint64_t count = 0;
  for (size_t b = 0; b < 65536; ++b) {
    const uint16_t* first = low.data() + start[b];
    const uint16_t* last = low.data() + start[b + 1];
    for (const uint16_t* p = first; p != last; ++p) {
      const uint64_t mask = uint64_t{1} << (*p & 63);
      uint64_t& word = seen[*p >> 6];
      count += (word & mask) == 0;
      word |= mask;
    }
    for (const uint16_t* p = first; p != last; ++p) seen[*p >> 6] = 0;  // only the words touched
  }
  return count;
}

}  // namespace coremlz::compress
