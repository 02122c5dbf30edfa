// Lloyd's assignment step for vector k-means without visiting every point:
// a k-d tree over the weighted points, walked with the centroids that may
// still be nearest (Kanungo et al.'s "filtering" algorithm). A node whose
// box lies wholly on one centroid's side of every bisector goes to that
// centroid whole, its precomputed weight, mean and scatter standing in for
// its points; only points near a boundary are searched one by one. The
// assignments are exactly a full search's (lowest centroid index on ties);
// once the clustering settles, a pass touches a few percent of the points.
#ifndef COREMLZ_COMPRESS_KMEANS_TREE_H_
#define COREMLZ_COMPRESS_KMEANS_TREE_H_

#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "compress/cancel.h"

namespace coremlz::compress {

// Points with multiplicities, row-major.
struct WeightedPoints {
  int dim = 0;
  std::vector<float> x;        // size() x dim
  std::vector<double> weight;  // > 0
  size_t size() const { return weight.size(); }
  const float* row(size_t i) const { return x.data() + i * static_cast<size_t>(dim); }
};

// Weighted means of clusters. Each cluster is summed about its first
// contribution (a point, or a node's mean), so a one-point cluster
// reproduces that point exactly and clusters far from the origin lose
// nothing to cancellation.
class ClusterSums {
 public:
  void Reset(int k, int dim);
  // `members` points of total `weight` whose mean is `value` (dim doubles).
  void Add(const double* value, double weight, int64_t members, int cluster);
  // Add(value, weight, 1, cluster) for a point of kDim coordinates (0:
  // any), inline for the leaf searches: the same operations, in the same
  // order.
  template <int kDim>
  void AddPoint(const double* value, double weight, int cluster) {
    const int dim = kDim > 0 ? kDim : dim_;
    double* anchor = &anchor_[static_cast<size_t>(cluster) * dim];
    if (members_[cluster] == 0) std::copy(value, value + dim, anchor);
    members_[cluster] += 1;
    sum_w_[cluster] += weight;
    double* sum = &sum_wd_[static_cast<size_t>(cluster) * dim];
    for (int t = 0; t < dim; ++t) sum[t] += weight * (value[t] - anchor[t]);
  }
  // Moves the centroids (k x dim) of non-empty clusters to their means;
  // returns the number of points per cluster (empty ones are the caller's).
  const std::vector<int64_t>& Finish(std::vector<double>* centroids) const;

 private:
  int dim_ = 0;
  std::vector<int64_t> members_;
  std::vector<double> anchor_, sum_w_, sum_wd_;
};

class KMeansTree {
 public:
  // Takes the points, sorted by `codes` (code_words words per point, word 0
  // most significant, ascending): Morton codes, whose bits interleave
  // monotone encodings of the coordinates, so that splitting a run of
  // points at the highest bit in which its codes differ halves a cell along
  // one dimension and leaves the halves ordered along it. A node is such a
  // run; a run of one code is halved by count. INVALID_ARGUMENT when the
  // sizes disagree or a weight is not positive; CANCELLED when `cancel` says
  // so; RESOURCE_EXHAUSTED past 2^31 - 1 points (32-bit indices keep the
  // tree half the size).
  static absl::StatusOr<KMeansTree> Build(WeightedPoints points, std::vector<uint32_t> codes, int code_words,
                                          CancelCheck* cancel);

  const WeightedPoints& points() const { return points_; }

  // Assigns every point to its nearest centroid (`centroids`: k x dim;
  // `assignment`: one per point, -1 for none yet), lowest index on ties, exactly as a full search would, counting
  // changes in `changed`. `sums` (optional) receives the clusters' sums.
  // Returns the weighted SSE, summed per node (rounding differs from a
  // point-by-point sum in the last bits). A cancelled pass stops part way:
  // check cancelled().
  double Assign(const std::vector<double>& centroids, int k, std::vector<int32_t>* assignment, size_t* changed,
                ClusterSums* sums);

  // Call after changing `assignment` by hand: the tree remembers which
  // nodes a pass gave to one centroid whole and skips their points when the
  // next pass gives them to the same one.
  void ForgetOwners();

  bool cancelled() const { return cancel_ != nullptr && cancel_->cancelled(); }

  // For tests, benchmarks and the choice between this and KMeansBounds:
  // nodes, and points searched one by one in the last Assign.
  size_t node_count() const { return nodes_.size(); }
  size_t last_points_searched() const { return points_searched_; }
  // Distances (and box tests, as many) the last Assign computed: a full
  // search computes points x k.
  size_t last_distances() const { return distances_; }

 private:
  struct Node {
    uint32_t begin, end;  // points [begin, end)
    uint32_t right;       // right child (left is the next node); 0 for a leaf
    uint32_t skip;        // the first node after this one's subtree
    double weight;        // total weight of the points
    double scatter;       // sum of w |x - mean|^2
  };
  struct Pass;

  KMeansTree() = default;
  uint32_t BuildNode(uint32_t begin, uint32_t end, int depth);
  void LeafStatistics(uint32_t id);
  template <int kDim>
  void SummariseLeaf(uint32_t begin, uint32_t end, int dim, float* lo, float* hi, double* mean, double* weight,
                     double* scatter) const;
  void Combine(uint32_t id, uint32_t left, uint32_t right);
  // kDim > 0: points of that many coordinates (the distances unroll); 0:
  // any. The same operations either way.
  template <int kDim>
  void Visit(Pass& pass, uint32_t id, int depth, int candidates);
  // A leaf across a boundary: each point against the `count` kept
  // candidates. kDim > 0: points of that many coordinates (unrolled).
  template <int kDim>
  void SearchLeaf(Pass& pass, const Node& node, const int32_t* kept, int count);
  void Own(Pass& pass, uint32_t id, int cluster);

  WeightedPoints points_;
  std::vector<uint32_t> codes_;  // while building
  int code_words_ = 0;
  std::vector<Node> nodes_;
  std::vector<float> lo_, hi_;   // nodes x dim: the points' bounding box
  std::vector<double> mean_;     // nodes x dim: the weighted mean
  std::vector<int32_t> owner_;   // the centroid that has the whole node, or -1
  std::vector<int32_t> candidates_;  // per depth, k each
  int max_depth_ = 0;
  CancelCheck* cancel_ = nullptr;
  size_t points_searched_ = 0;
  size_t distances_ = 0;
};

}  // namespace coremlz::compress

#endif  // COREMLZ_COMPRESS_KMEANS_TREE_H_
