#include "compress/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "format/fp16.h"

namespace coremlz::compress {

ErrorMetrics CompareTensors(absl::Span<const float> x, absl::Span<const float> y) {
  ErrorAccumulator acc;
  acc.Add(x, y);
  return acc.Result();
}

void ErrorAccumulator::Add(absl::Span<const float> x, absl::Span<const float> y) {
  // Locals, not the members: updated through `this`, each sum went through
  // memory every element (a store-forwarding chain, ~2.5x slower). The sums
  // are still added in element order, so the result is the same to the bit.
  double signal = signal_, peak = peak_, noise = noise_, max_err = max_err_;
  const float* xp = x.data();
  const float* yp = y.data();
  for (size_t i = 0, n = x.size(); i < n; ++i) {
    const double a = xp[i], d = a - static_cast<double>(yp[i]);
    signal += a * a;
    peak = std::max(peak, a * a);
    noise += d * d;
    max_err = std::max(max_err, std::fabs(d));
  }
  signal_ = signal;
  peak_ = peak;
  noise_ = noise;
  max_err_ = max_err;
  count_ += x.size();
}

ErrorMetrics ErrorAccumulator::Result() const {
  ErrorMetrics m;
  if (count_ == 0) return m;
  const double n = static_cast<double>(count_);
  m.mse = noise_ / n;
  m.max_abs_error = max_err_;
  const double inf = std::numeric_limits<double>::infinity();
  if (noise_ == 0) {
    m.snr_db = m.psnr_db = inf;
  } else {
    m.snr_db = signal_ == 0 ? -inf : 10 * std::log10((signal_ / n) / m.mse);
    m.psnr_db = peak_ == 0 ? -inf : 10 * std::log10(peak_ / m.mse);
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
