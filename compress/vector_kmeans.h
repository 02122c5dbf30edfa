// k-means for vectors (cluster_dim > 1 palettization): k-means++ seeding
// from a fixed seed followed by Lloyd iterations. Deterministic for a given
// input and seed.
#ifndef COREMLZ_COMPRESS_VECTOR_KMEANS_H_
#define COREMLZ_COMPRESS_VECTOR_KMEANS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "compress/cancel.h"

namespace coremlz::compress {

struct VectorKMeansOptions {
  int max_iterations = 300;
  // Stop when no assignment changes, or when the relative SSE improvement of
  // an iteration falls below this.
  double tolerance = 1e-6;
  // Also stop when an update moves the centroids by at most this times the
  // data's mean per-dimension variance, in total squared distance:
  // scikit-learn's KMeans rule, which coremltools runs with 1e-2 for vector
  // palettes (palettize.cc does the same). 0: off.
  double shift_tolerance = 0;
  uint64_t seed = 0;
  // Optional: polled throughout (sorting, seeding, every assignment pass);
  // when it says stop, VectorKMeans returns CANCELLED.
  CancelCheck* cancel = nullptr;
};

struct VectorKMeansResult {
  std::vector<float> centroids;   // k x dim, row-major; k = min(k, #distinct vectors)
  std::vector<int32_t> assignment;  // per input vector
  double sse = 0;
  int iterations = 0;
};

// `data` holds count x dim floats (row-major). Exact duplicates are collapsed
// (weighted) before seeding, so a tensor with fewer distinct vectors than k
// gets exactly those vectors as centroids. INVALID_ARGUMENT for bad options
// or non-finite data; RESOURCE_EXHAUSTED past 2^32 - 2 vectors or 2^31 - 1
// distinct ones (32-bit indices); CANCELLED when the hook says so.
absl::StatusOr<VectorKMeansResult> VectorKMeans(absl::Span<const float> data, int dim, int k,
                                                const VectorKMeansOptions& options = {});

}  // namespace coremlz::compress

#endif  // COREMLZ_COMPRESS_VECTOR_KMEANS_H_
