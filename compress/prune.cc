#include "compress/prune.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "compress/reduce.h"
#include "format/fp16.h"

namespace coremlz::compress {
namespace {

// numpy.percentile(values, q) with linear interpolation, computed in double
// the way numpy 1.x does (the version Core ML tools' reference outputs were
// made with): virtual index (n - 1) * q / 100, lerp between neighbours.
// The values at sorted ranks lo and lo + 1 when every value is a
// non-negative half (fp16 weight magnitudes): counted in a histogram of the
// 31744 finite half codes, whose order is the values' order. False if some
// value is not such a half.
bool HalfOrderStats(const std::vector<float>& values, size_t lo, double* a, double* b) {
  std::vector<uint32_t> count(0x7c00, 0);
  uint16_t halves[2048];
  float back[2048];
  for (size_t i = 0; i < values.size(); i += 2048) {
    const size_t n = std::min<size_t>(2048, values.size() - i);
    const auto chunk = absl::MakeConstSpan(values.data() + i, n);
    format::FloatToHalf(chunk, absl::MakeSpan(halves, n));
    format::HalfToFloat(absl::MakeConstSpan(halves, n), absl::MakeSpan(back, n));
    bool exact = true;
    for (size_t j = 0; j < n; ++j) exact &= back[j] == chunk[j] && halves[j] < 0x7c00;
    if (!exact) return false;
    for (size_t j = 0; j < n; ++j) ++count[halves[j]];
  }
  uint64_t seen = 0;
  bool have_a = false;
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    if (count[h] == 0) continue;
    seen += count[h];
    if (!have_a && seen > lo) {
      *a = format::HalfToFloat(static_cast<uint16_t>(h));
      have_a = true;
    }
    if (seen > lo + 1) {
      *b = format::HalfToFloat(static_cast<uint16_t>(h));
      return true;
    }
  }
  return false;  // unreachable when lo + 1 < size
}

// The same for non-negative floats (magnitudes) of any precision: their bit
// patterns order as their values, so two radix passes find both ranks - the
// upper 16 bits by a histogram of every value, then the lower 16 bits by a
// histogram of the values in the one or two buckets that hold the ranks.
// False if some value is negative or NaN.
bool RadixOrderStats(const std::vector<float>& values, size_t lo, double* a, double* b) {
  std::vector<uint32_t> hist(65536, 0);
  uint32_t bad = 0;
  const size_t n = values.size();
  const float* v = values.data();
  for (size_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, v + i, 4);
    bad |= u > 0x7f800000u;  // the sign bit, or a NaN
    ++hist[u >> 16];
  }
  if (bad != 0) return false;
  // Bucket and rank within it of the ranks lo and lo + 1.
  uint32_t bucket[2] = {0, 0};
  uint64_t rank[2] = {lo, lo + 1};
  uint64_t seen = 0;
  for (int r = 0, h = 0; r < 2; ++r) {
    while (seen + hist[h] <= rank[r]) seen += hist[h++];
    bucket[r] = static_cast<uint32_t>(h);
    rank[r] -= seen;
  }
  std::vector<uint32_t> low[2] = {std::vector<uint32_t>(65536, 0), std::vector<uint32_t>()};
  if (bucket[1] != bucket[0]) low[1].assign(65536, 0);
  std::vector<uint32_t>& low_b = bucket[1] != bucket[0] ? low[1] : low[0];
  for (size_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, v + i, 4);
    if ((u >> 16) == bucket[0]) ++low[0][u & 0xffff];
    if ((u >> 16) == bucket[1] && bucket[1] != bucket[0]) ++low_b[u & 0xffff];
  }
  double* out[2] = {a, b};
  for (int r = 0; r < 2; ++r) {
    const std::vector<uint32_t>& h = r == 0 ? low[0] : low_b;
    uint64_t before = 0;
    uint32_t l = 0;
    while (before + h[l] <= rank[r]) before += h[l++];
    const uint32_t bits = (bucket[r] << 16) | l;
    float f;
    std::memcpy(&f, &bits, 4);
    *out[r] = f;
  }
  return true;
}

double Percentile(const std::vector<float>& values, double target_sparsity) {
  const size_t n = values.size();
  const double quantile = (target_sparsity * 100.0) / 100.0;
  const double vi = static_cast<double>(n - 1) * quantile;
  size_t lo = static_cast<size_t>(std::floor(vi));
  if (lo >= n - 1) {
    return *std::max_element(values.begin(), values.end());
  }
  double a = 0, b = 0;
  if (!HalfOrderStats(values, lo, &a, &b) && !RadixOrderStats(values, lo, &a, &b)) {
    std::vector<float> sorted = values;
    std::nth_element(sorted.begin(), sorted.begin() + lo, sorted.end());
    a = sorted[lo];
    b = *std::min_element(sorted.begin() + lo + 1, sorted.end());
  }
  const double g = vi - static_cast<double>(lo);
  return g >= 0.5 ? b - (b - a) * (1 - g) : a + (b - a) * g;
}

// The comparison happens in the weight dtype (numpy casts the float64
// percentile to the array's type).
float ThresholdInWeightType(double t, Precision p) {
  if (p == Precision::kFloat16) return format::HalfToFloat(format::DoubleToHalf(t));
  return static_cast<float>(t);
}

absl::Status CheckFinite(absl::Span<const float> w) {
  if (!AllFinite(w)) return absl::InvalidArgumentError("weights contain NaN or infinity");
  return absl::OkStatus();
}

absl::Status CheckSparsity(double s) {
  if (!(s >= 0.0 && s <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("target_sparsity must be in [0, 1], got ", s));
  }
  return absl::OkStatus();
}

void PruneByMap(absl::Span<float> weights, const std::vector<float>& magnitude, double target, Precision p) {
  if (target == 1.0) {
    std::fill(weights.begin(), weights.end(), 0.0f);
    return;
  }
  if (target == 0.0 || weights.empty()) return;
  const float cut = ThresholdInWeightType(Percentile(magnitude, target), p);
  float* w = weights.data();
  const float* m = magnitude.data();
  for (size_t i = 0; i < weights.size(); ++i) w[i] = m[i] <= cut ? 0.0f : w[i];  // a select: vectorizes
}

// Row-major strides of a shape.
std::vector<int64_t> Strides(absl::Span<const int64_t> shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (size_t a = shape.size(); a > 1; --a) s[a - 2] = s[a - 1] * shape[a - 1];
  return s;
}

}  // namespace

absl::Status ThresholdPrune(absl::Span<float> weights, double threshold_in, double minimum_sparsity, Precision p) {
  if (!(threshold_in >= 0)) return absl::InvalidArgumentError(absl::StrCat("threshold must be >= 0, got ", threshold_in));
  const float threshold = ThresholdInWeightType(threshold_in, p);
  if (!(minimum_sparsity >= 0 && minimum_sparsity <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("minimum_sparsity_percentile must be in [0, 1], got ", minimum_sparsity));
  }
  if (auto s = CheckFinite(weights); !s.ok()) return s;
  size_t zeros = 0;
  for (float v : weights) zeros += std::fabs(v) <= threshold;
  const double sparsity = weights.empty() ? 0.0 : static_cast<double>(zeros) / weights.size();
  if (sparsity < minimum_sparsity) {
    return absl::FailedPreconditionError(absl::StrCat("threshold ", threshold, " gives sparsity ", sparsity,
                                                      ", below minimum_sparsity_percentile ", minimum_sparsity));
  }
  for (float& v : weights) {
    if (std::fabs(v) <= threshold) v = 0.0f;
  }
  return absl::OkStatus();
}

absl::Status MagnitudePrune(absl::Span<float> weights, double target, Precision p, CancelCheck* cancel) {
  if (auto s = CheckSparsity(target); !s.ok()) return s;
  if (auto s = CheckFinite(weights); !s.ok()) return s;
  std::vector<float> magnitude(weights.size());
  for (size_t i = 0; i < weights.size(); ++i) magnitude[i] = std::fabs(weights[i]);
  // The percentile is one linear-time selection; poll on either side.
  if (Stopped(cancel, static_cast<int64_t>(weights.size()))) return CancelledStatus();
  PruneByMap(weights, magnitude, target, p);
  return absl::OkStatus();
}

absl::Status BlockMagnitudePrune(absl::Span<float> weights, absl::Span<const int64_t> shape, int block_size,
                                 int dim, double target, Precision p, CancelCheck* cancel) {
  if (auto s = CheckSparsity(target); !s.ok()) return s;
  if (auto s = CheckFinite(weights); !s.ok()) return s;
  if (shape.size() < 2 || shape.size() > 5) {
    return absl::FailedPreconditionError(absl::StrCat("block sparsity needs a weight of rank 2 to 5, got rank ", shape.size()));
  }
  if (dim != 0 && dim != 1) return absl::InvalidArgumentError(absl::StrCat("dim must be 0 or 1, got ", dim));
  if (block_size < 2) return absl::InvalidArgumentError(absl::StrCat("block_size must be > 1, got ", block_size));
  const int64_t channels = shape[dim];
  if (block_size > channels / 2.0) {
    return absl::FailedPreconditionError(absl::StrCat("block_size ", block_size, " exceeds half of the ", channels,
                                                      " channels on axis ", dim));
  }
  const std::vector<int64_t> stride = Strides(shape);
  // Sum of squares per (block along dim, position on every other axis).
  const int64_t blocks = (channels + block_size - 1) / block_size;
  const int64_t others = static_cast<int64_t>(weights.size()) / channels;
  std::vector<double> sumsq(blocks * others, 0.0);
  auto other_index = [&](int64_t e) {
    // Index of e with the `dim` coordinate removed.
    const int64_t before = e / (stride[dim] * channels);
    const int64_t after = e % stride[dim];
    return before * stride[dim] + after;
  };
  for (int64_t e = 0; e < static_cast<int64_t>(weights.size()); ++e) {
    const int64_t c = (e / stride[dim]) % channels;
    const double v = weights[e];
    sumsq[(c / block_size) * others + other_index(e)] += v * v;
  }
  std::vector<float> magnitude(weights.size());
  for (int64_t e = 0; e < static_cast<int64_t>(weights.size()); ++e) {
    const int64_t c = (e / stride[dim]) % channels;
    magnitude[e] = R(p, static_cast<float>(std::sqrt(sumsq[(c / block_size) * others + other_index(e)])));
  }
  if (Stopped(cancel, 4 * static_cast<int64_t>(weights.size()))) return CancelledStatus();
  PruneByMap(weights, magnitude, target, p);
  return absl::OkStatus();
}

absl::Status NMPrune(absl::Span<float> weights, absl::Span<const int64_t> shape, int n, int m, int dim,
                     CancelCheck* cancel) {
  if (auto s = CheckFinite(weights); !s.ok()) return s;
  if (m < 1 || n < 0 || n > m) {
    return absl::InvalidArgumentError(absl::StrCat("n_m_ratio must satisfy 0 <= n <= m, m >= 1; got ", n, ":", m));
  }
  if (shape.size() < 2 || shape.size() > 5) {
    return absl::FailedPreconditionError(absl::StrCat("n:m sparsity needs a weight of rank 2 to 5, got rank ", shape.size()));
  }
  if (dim != 0 && dim != 1) return absl::InvalidArgumentError(absl::StrCat("dim must be 0 or 1, got ", dim));
  const int64_t channels = shape[dim];
  if (m > channels / 2.0) {
    return absl::FailedPreconditionError(absl::StrCat("m = ", m, " exceeds half of the ", channels,
                                                      " channels on axis ", dim));
  }
  const std::vector<int64_t> stride = Strides(shape);
  const int64_t total = static_cast<int64_t>(weights.size());
  const int64_t step = stride[dim];
  // Every line along `dim` (all other coordinates fixed) in groups of m:
  // lines start at before * (channels * step) + after.
  std::vector<int64_t> order(m);
  std::vector<float> mag(m);
  std::vector<int64_t> pos(m);
  for (int64_t before = 0; before < total / (channels * step); ++before) {
    for (int64_t after = 0; after < step; ++after) {
      const int64_t e = before * channels * step + after;
      for (int64_t start = 0; start < channels; start += m) {
        // The insertion sort is up to m^2 steps: large m is slow.
        if (Stopped(cancel, static_cast<int64_t>(m) * m)) return CancelledStatus();
        for (int j = 0; j < m; ++j) {
          const int64_t c = start + j;
          pos[j] = c < channels ? e + c * step : -1;
          mag[j] = c < channels ? std::fabs(weights[pos[j]]) : 0.0f;  // zero padding competes too
        }
        // Stable insertion sort by magnitude: m is small, and ties keep their
        // position order as numpy's stable argsort does.
        for (int j = 0; j < m; ++j) {
          int64_t k = j;
          while (k > 0 && mag[order[k - 1]] > mag[j]) {
            order[k] = order[k - 1];
            --k;
          }
          order[k] = j;
        }
        for (int j = 0; j < n; ++j) {
          if (pos[order[j]] >= 0) weights[pos[order[j]]] = 0.0f;
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace coremlz::compress
