// Fidelity and size metrics comparing an original tensor with its
// reconstruction after compression.
#ifndef COREMLZ_COMPRESS_METRICS_H_
#define COREMLZ_COMPRESS_METRICS_H_

#include <cstdint>

#include "absl/types/span.h"

namespace coremlz::compress {

struct ErrorMetrics {
  // 10 log10(mean(x^2) / mean((x - y)^2)); +inf when the reconstruction is
  // exact, -inf when the original is all zeros but the reconstruction is not.
  double snr_db = 0;
  // 10 log10(max(x^2) / mean((x - y)^2)).
  double psnr_db = 0;
  double max_abs_error = 0;
  double mse = 0;
};

ErrorMetrics CompareTensors(absl::Span<const float> original, absl::Span<const float> reconstructed);

// The same metrics over a tensor compared piece by piece, so that a caller
// need not hold the whole original as floats beside its reconstruction
// (LLM-sized weights). Pieces added in order give exactly CompareTensors
// over their concatenation (the same sums in the same order: four partial
// sums by element index mod 4, combined at the end).
class ErrorAccumulator {
 public:
  void Add(absl::Span<const float> original, absl::Span<const float> reconstructed);
  ErrorMetrics Result() const;

 private:
  double signal_[4] = {}, peak_[4] = {}, noise_[4] = {}, max_err_[4] = {};
  uint64_t count_ = 0;
};

// Fraction of entries that are exactly zero (either sign).
double Sparsity(absl::Span<const float> values);

// Number of distinct values (0.0 and -0.0 count once).
// Linear time whatever the values (fp16-exact values take a 65536-bit set).
uint64_t DistinctCount(absl::Span<const float> values);

// The same count by bit pattern (0.0 and -0.0 fold; each NaN pattern counts
// once), without the fp16 fast path: exported for tests.
uint64_t DistinctBitPatterns(absl::Span<const float> values);

}  // namespace coremlz::compress

#endif  // COREMLZ_COMPRESS_METRICS_H_
