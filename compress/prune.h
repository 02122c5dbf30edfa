// Pruning (sparsification): choose weights to set to zero. Each function
// zeroes entries of `weights` in place; the caller derives the sparse form
// (mask of non-zeros plus the non-zero values in row-major order). Those
// taking a CancelCheck (optional) return CANCELLED, with the weights partly
// pruned, when it says stop.
#ifndef COREMLZ_COMPRESS_PRUNE_H_
#define COREMLZ_COMPRESS_PRUNE_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "compress/cancel.h"
#include "compress/precision.h"

namespace coremlz::compress {

// Zeroes |w| <= threshold, comparing in the weight dtype (the threshold is
// rounded to fp16 for fp16 weights, as numpy does). Returns
// FailedPrecondition (a skip) and leaves the weights untouched if the
// resulting fraction of zeros would be below `minimum_sparsity` (Core ML
// tools' minimum_sparsity_percentile).
absl::Status ThresholdPrune(absl::Span<float> weights, double threshold, double minimum_sparsity, Precision precision);

// Zeroes the smallest-magnitude weights so that about `target_sparsity` of
// them are zero: the cut-off is the magnitude at that percentile and every
// weight at or below it goes (ties included), as in Core ML tools. The
// percentile is numpy 1.x's linear interpolation in float64, cast to the
// weight dtype for the comparison: the behaviour of the numpy that made
// Core ML tools' reference outputs (../shared/golden).
absl::Status MagnitudePrune(absl::Span<float> weights, double target_sparsity, Precision precision,
                            CancelCheck* cancel = nullptr);

// Block sparsity: blocks of `block_size` consecutive channels along `dim`
// (0 or 1) are scored by their L2 norm (every element carries its block's
// norm) and the lowest-scoring elements are zeroed as in MagnitudePrune.
// Norms are exact (double); Core ML tools square and sum in fp16, which
// overflows for |w| >= 256 - a deliberate difference.
// The axis is zero-padded to a multiple of block_size for scoring. Skips
// (FailedPrecondition) when block_size exceeds half the axis, or for rank < 2.
absl::Status BlockMagnitudePrune(absl::Span<float> weights, absl::Span<const int64_t> shape, int block_size,
                                 int dim, double target_sparsity, Precision precision,
                                 CancelCheck* cancel = nullptr);

// n:m sparsity: in every run of m consecutive elements along `dim` (0 or 1)
// the n smallest magnitudes are zeroed (lower index first on ties). The axis
// is zero-padded to a multiple of m; padding takes part in the choice, as in
// Core ML tools. Skips when m exceeds half the axis, or for rank < 2.
absl::Status NMPrune(absl::Span<float> weights, absl::Span<const int64_t> shape, int n, int m, int dim,
                     CancelCheck* cancel = nullptr);

}  // namespace coremlz::compress

#endif  // COREMLZ_COMPRESS_PRUNE_H_
