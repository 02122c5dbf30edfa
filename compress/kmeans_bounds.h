// Lloyd's assignment step for vector k-means with per-point bounds
// (Hamerly's algorithm): a point whose distance to its own centroid is below
// half the gap to that centroid's nearest neighbour, or below a lower bound
// on its distance to every other centroid (kept across passes and loosened
// by how far the centroids moved), keeps its centroid without a search.
// Exactly a full search's assignments. KMeansTree prunes better in few
// dimensions, where a box lies on one side of a bisector; in many
// dimensions boxes straddle most bisectors and these bounds skip more.
#ifndef COREMLZ_COMPRESS_KMEANS_BOUNDS_H_
#define COREMLZ_COMPRESS_KMEANS_BOUNDS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "compress/cancel.h"
#include "compress/kmeans_tree.h"

namespace coremlz::compress {

class KMeansBounds {
 public:
  // `points` must outlive this.
  KMeansBounds(const WeightedPoints& points, int k, CancelCheck* cancel);

  // Assigns every point to its nearest centroid (lowest index on ties),
  // counting changes in `changed`; `sums` (optional) receives the clusters'
  // sums, point by point in order. `before` holds the centroids of the
  // previous call (ignored by the first call, which searches every point).
  // Returns the weighted SSE. A cancelled pass stops part way: check
  // cancelled().
  double Assign(const std::vector<double>& before, const std::vector<double>& centroids,
                std::vector<int32_t>* assignment, size_t* changed, ClusterSums* sums);

  // Call after changing point i's assignment by hand.
  void Invalidate(size_t i) { lower_[i] = 0; }

  bool cancelled() const { return cancel_ != nullptr && cancel_->cancelled(); }

 private:
  // Full search for point i among all centroids (lowest index on ties);
  // sets its lower bound and returns its squared distance.
  double Search(size_t i, const std::vector<double>& centroids, std::vector<int32_t>* assignment,
                size_t* changed);

  const WeightedPoints& p_;
  const int k_;
  CancelCheck* const cancel_;
  bool first_ = true;
  std::vector<double> lower_;     // per point: below its distance to every other centroid
  std::vector<double> half_gap_;  // per centroid
  std::vector<double> moved_;     // per centroid
  std::vector<double> row_;       // the point being searched, in double
};

}  // namespace coremlz::compress

#endif  // COREMLZ_COMPRESS_KMEANS_BOUNDS_H_
