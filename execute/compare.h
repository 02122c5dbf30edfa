// Comparing an executor's output with a reference output: signal metrics
// (PSNR relative to the reference's peak, SNR, cosine similarity, max abs
// error) and, for class scores, top-k agreement and the KL divergence
// between the two softmax distributions.
#ifndef COREMLZ_EXECUTE_COMPARE_H_
#define COREMLZ_EXECUTE_COMPARE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace coremlz::execute {

struct OutputComparison {
  // 10 log10(max(ref^2) / mse); +inf when identical.
  double psnr_db = 0;
  // 10 log10(mean(ref^2) / mse); +inf when identical.
  double snr_db = 0;
  // <ref, out> / (|ref| |out|); 1 when both are zero.
  double cosine = 0;
  double max_abs_error = 0;
  double mse = 0;
};

// Both spans the same length (INVALID_ARGUMENT otherwise). Accumulates in
// double.
absl::StatusOr<OutputComparison> CompareOutputs(absl::Span<const float> reference, absl::Span<const float> actual);

struct ClassComparison {
  int64_t rows = 0;
  double top1_agreement = 0;  // fraction of rows whose arg max agrees
  double top5_overlap = 0;    // mean |top5(ref) ∩ top5(out)| / 5 (k = classes when fewer)
  // Mean KL(ref || out) in nats, of the rows themselves when both are
  // probability distributions (non-negative, summing to 1 within 1e-3),
  // else of their softmax.
  double mean_kl = 0;
};

// Scores as rows of `classes` logits (the last dim of a [..., classes]
// output).
absl::StatusOr<ClassComparison> CompareClassScores(absl::Span<const float> reference, absl::Span<const float> actual,
                                                   int64_t classes);

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_COMPARE_H_
