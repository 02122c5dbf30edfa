// Exact (globally optimal) weighted k-means in one dimension.
//
// Palettizing a weight tensor means choosing 2^n values (a palette) and
// mapping every weight to one of them. In 1-D the clusters of an optimal
// k-means solution are contiguous runs of the sorted values, so dynamic
// programming over the sorted distinct values finds the minimum-SSE
// partition exactly. fp16 weights have at most 65536 distinct values, so the
// cost does not grow with the tensor size once a histogram is built.
//
// kmeans1d.cc is ~950 lines because the algorithm is explained where it
// lives (the DP, its pruned divide-and-conquer, the numerics of the cost
// evaluation, the cancellation points) - see docs/performance.md for why
// SMAWK was measured and not kept.
#ifndef COREMLZ_COMPRESS_KMEANS1D_H_
#define COREMLZ_COMPRESS_KMEANS1D_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "compress/cancel.h"

namespace coremlz::compress {

struct KMeans1DResult {
  // One centroid per cluster, ascending; size is min(k, number of values).
  // Each centroid is the weighted mean of its run.
  std::vector<double> centroids;
  // cluster[i] = index into `centroids` of values[i].
  std::vector<int32_t> cluster;
  // Weighted sum of squared distances to the assigned centroid.
  double sse = 0;
};

// `values` must be strictly increasing and finite; `weights` (counts) must be
// positive and as long as `values`. k >= 1. Errors on violated preconditions;
// CANCELLED when `cancel` (optional) says so, polled within every DP layer.
absl::StatusOr<KMeans1DResult> OptimalKMeans1D(absl::Span<const double> values,
                                               absl::Span<const double> weights, int k,
                                               CancelCheck* cancel = nullptr);

// Which DP rows OptimalKMeans1D computes. kAuto: the bounds that skip rows
// which cannot be on an optimal path (see kmeans1d.cc) when k is large
// enough for them to pay (k >= 8), else every row. The result is the same
// either way; tests and benchmarks force one or the other.
enum class KMeans1DRows { kAuto, kEvery, kBounded };

// The clusters alone (cluster[i] as OptimalKMeans1D's): palettization
// computes its palette entries itself, so it skips the centroids and the
// SSE, which in double-double cost about a tenth of a grouped palette.
absl::StatusOr<std::vector<int32_t>> OptimalKMeans1DClusters(absl::Span<const double> values,
                                                             absl::Span<const double> weights, int k,
                                                             CancelCheck* cancel = nullptr);

// What one solve did, for tests and benchmarks: the result does not depend
// on it, so only it can show that the bounds stayed tight.
struct KMeans1DStats {
  int64_t rows = 0;              // DP rows computed (a row: one layer, one end point)
  int penalised_passes = 0;      // the bounds' passes, prefix and suffix
  bool bounded = false;          // the bounds were set up and used to the end
  bool compact_moments = false;  // the passes read rounded prefix sums (CompactCost)
};

absl::StatusOr<KMeans1DResult> OptimalKMeans1DWithRows(absl::Span<const double> values,
                                                       absl::Span<const double> weights, int k,
                                                       KMeans1DRows rows,
                                                       CancelCheck* cancel = nullptr,
                                                       KMeans1DStats* stats = nullptr);

}  // namespace coremlz::compress

#endif  // COREMLZ_COMPRESS_KMEANS1D_H_
