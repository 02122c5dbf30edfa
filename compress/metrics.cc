#include "compress/metrics.h"

#include <algorithm>
#include <cmath>
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
  for (size_t i = 0; i < x.size(); ++i) {
    const double a = x[i], d = a - static_cast<double>(y[i]);
    signal_ += a * a;
    peak_ = std::max(peak_, a * a);
    noise_ += d * d;
    max_err_ = std::max(max_err_, std::fabs(d));
  }
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
  // sends the whole count to the sort below.
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
  std::vector<float> v(values.begin(), values.end());
  for (float& f : v) {
    if (f == 0.0f) f = 0.0f;  // fold -0.0
  }
  std::sort(v.begin(), v.end());
  return static_cast<uint64_t>(std::unique(v.begin(), v.end()) - v.begin());
}

}  // namespace coremlz::compress
