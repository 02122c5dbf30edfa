#include "execute/compare.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace coremlz::execute {
namespace {

std::vector<int64_t> TopK(absl::Span<const float> row, int64_t k) {
  std::vector<int64_t> idx(row.size());
  std::iota(idx.begin(), idx.end(), 0);
  // Ties go to the lower index, as an arg max does.
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int64_t a, int64_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
  idx.resize(k);
  return idx;
}

std::vector<double> LogSoftmax(absl::Span<const float> row) {
  double m = -std::numeric_limits<double>::infinity();
  for (float v : row) m = std::max(m, static_cast<double>(v));
  double sum = 0;
  for (float v : row) sum += std::exp(v - m);
  const double lse = m + std::log(sum);
  std::vector<double> out(row.size());
  for (size_t i = 0; i < row.size(); ++i) out[i] = row[i] - lse;
  return out;
}

// Whether a row already is a probability distribution (a classifier's
// probabilities, a softmax output): non-negative, summing to 1.
bool IsDistribution(absl::Span<const float> row) {
  double sum = 0;
  for (float v : row) {
    if (!(v >= 0 && v <= 1)) return false;  // NaN fails too
    sum += v;
  }
  return std::fabs(sum - 1) <= 1e-3;
}

// Log-probabilities of a distribution row; a zero becomes a tiny floor so
// that a class the compressed model rules out costs a large, finite KL.
std::vector<double> LogOf(absl::Span<const float> row) {
  std::vector<double> out(row.size());
  for (size_t i = 0; i < row.size(); ++i) out[i] = std::log(std::max(static_cast<double>(row[i]), 1e-30));
  return out;
}

}  // namespace

absl::StatusOr<OutputComparison> CompareOutputs(absl::Span<const float> reference, absl::Span<const float> actual) {
  if (reference.size() != actual.size()) {
    return absl::InvalidArgumentError(absl::StrCat("outputs differ in size: ", reference.size(), " vs ", actual.size()));
  }
  OutputComparison c;
  double se = 0, peak = 0, energy = 0, dot = 0, norm_a = 0;
  for (size_t i = 0; i < reference.size(); ++i) {
    const double r = reference[i], a = actual[i], d = r - a;
    se += d * d;
    peak = std::max(peak, r * r);
    energy += r * r;
    dot += r * a;
    norm_a += a * a;
    c.max_abs_error = std::max(c.max_abs_error, std::fabs(d));
  }
  const double n = std::max<size_t>(reference.size(), 1);
  c.mse = se / n;
  const double inf = std::numeric_limits<double>::infinity();
  c.psnr_db = c.mse == 0 ? inf : 10 * std::log10(peak / c.mse);
  c.snr_db = c.mse == 0 ? inf : 10 * std::log10((energy / n) / c.mse);
  if (energy == 0 && norm_a == 0) c.cosine = 1;
  else if (energy == 0 || norm_a == 0) c.cosine = 0;
  else c.cosine = dot / (std::sqrt(energy) * std::sqrt(norm_a));
  return c;
}

absl::StatusOr<ClassComparison> CompareClassScores(absl::Span<const float> reference, absl::Span<const float> actual,
                                                   int64_t classes) {
  if (reference.size() != actual.size()) return absl::InvalidArgumentError("outputs differ in size");
  if (classes <= 0 || reference.size() % classes != 0) {
    return absl::InvalidArgumentError(absl::StrCat(reference.size(), " scores are not rows of ", classes));
  }
  ClassComparison c;
  c.rows = static_cast<int64_t>(reference.size()) / classes;
  const int64_t k = std::min<int64_t>(5, classes);
  for (int64_t r = 0; r < c.rows; ++r) {
    auto ref = reference.subspan(r * classes, classes);
    auto act = actual.subspan(r * classes, classes);
    const std::vector<int64_t> tr = TopK(ref, k), ta = TopK(act, k);
    if (tr[0] == ta[0]) c.top1_agreement += 1;
    int64_t common = 0;
    for (int64_t i : tr) common += std::count(ta.begin(), ta.end(), i);
    c.top5_overlap += static_cast<double>(common) / k;
    // Probabilities are compared as they are; softmax of them would flatten
    // both distributions and understate the divergence.
    const bool probabilities = IsDistribution(ref) && IsDistribution(act);
    const std::vector<double> lp = probabilities ? LogOf(ref) : LogSoftmax(ref);
    const std::vector<double> lq = probabilities ? LogOf(act) : LogSoftmax(act);
    double kl = 0;
    for (int64_t i = 0; i < classes; ++i) {
      const double p = probabilities ? ref[i] : std::exp(lp[i]);
      if (p > 0) kl += p * (lp[i] - lq[i]);
    }
    c.mean_kl += kl;
  }
  if (c.rows > 0) {
    c.top1_agreement /= c.rows;
    c.top5_overlap /= c.rows;
    c.mean_kl /= c.rows;
  }
  return c;
}

}  // namespace coremlz::execute
