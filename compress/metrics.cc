#include "compress/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace coremlz::compress {

ErrorMetrics CompareTensors(absl::Span<const float> x, absl::Span<const float> y) {
  ErrorMetrics m;
  if (x.empty()) return m;
  double signal = 0, peak = 0, noise = 0, max_err = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double a = x[i], d = a - static_cast<double>(y[i]);
    signal += a * a;
    peak = std::max(peak, a * a);
    noise += d * d;
    max_err = std::max(max_err, std::fabs(d));
  }
  const double n = static_cast<double>(x.size());
  m.mse = noise / n;
  m.max_abs_error = max_err;
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
  std::vector<float> v(values.begin(), values.end());
  for (float& f : v) {
    if (f == 0.0f) f = 0.0f;  // fold -0.0
  }
  std::sort(v.begin(), v.end());
  return static_cast<uint64_t>(std::unique(v.begin(), v.end()) - v.begin());
}

}  // namespace coremlz::compress
