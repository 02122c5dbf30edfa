#include "compress/kmeans_tree.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "compress/squared_distance.h"

namespace coremlz::compress {
namespace {

// Leaves this small keep the boundary's one-by-one searches short; the
// nodes cost less memory than the points themselves (leaves of up to 16 or
// 64 points measured no faster).
constexpr uint32_t kLeafSize = 32;

// Whether centroid z is farther than centroid near from every point of the
// box [lo, hi], by more than rounding could blur. |x - z|^2 - |x - near|^2
// is linear in x, so its minimum over the box is at the corner that takes,
// per dimension, lo where near_t > z_t and hi otherwise. The margin bounds
// the rounding of that sum and of a leaf's two computed distances for any x
// in the box (each term is within `reach` of both centroids, and a leaf
// subtracts a widened float from a double once per term), so a pruned
// centroid also loses each point's computed comparison, never ties it.
inline bool FartherOnWholeBox(const double* z, const double* near, const float* lo, const float* hi, int dim) {
  double least = 0;
  double scale = 0;
  for (int t = 0; t < dim; ++t) {
    const double step = near[t] - z[t];
    const double corner = step > 0 ? lo[t] : hi[t];
    least += step * (2 * corner - z[t] - near[t]);
    const double l = lo[t], h = hi[t];
    const double reach = std::max(std::max(std::fabs(l - z[t]), std::fabs(h - z[t])),
                                  std::max(std::fabs(l - near[t]), std::fabs(h - near[t])));
    scale += reach * reach;
  }
  // A few ulps per term of the sums, with room to spare; grows with dim.
  const double relative = 1e-12 + (16.0 * dim + 64) * std::numeric_limits<double>::epsilon();
  return least > relative * scale;
}

}  // namespace

void ClusterSums::Reset(int k, int dim) {
  dim_ = dim;
  members_.assign(k, 0);
  anchor_.assign(static_cast<size_t>(k) * dim, 0);
  sum_w_.assign(k, 0);
  sum_wd_.assign(static_cast<size_t>(k) * dim, 0);
}

void ClusterSums::Add(const double* value, double weight, int64_t members, int cluster) {
  double* anchor = &anchor_[static_cast<size_t>(cluster) * dim_];
  if (members_[cluster] == 0) std::copy(value, value + dim_, anchor);
  members_[cluster] += members;
  sum_w_[cluster] += weight;
  double* sum = &sum_wd_[static_cast<size_t>(cluster) * dim_];
  for (int t = 0; t < dim_; ++t) sum[t] += weight * (value[t] - anchor[t]);
}

const std::vector<int64_t>& ClusterSums::Finish(std::vector<double>* centroids) const {
  const int k = static_cast<int>(members_.size());
  for (int c = 0; c < k; ++c) {
    if (members_[c] == 0) continue;
    for (int t = 0; t < dim_; ++t) {
      const size_t at = static_cast<size_t>(c) * dim_ + t;
      (*centroids)[at] = anchor_[at] + sum_wd_[at] / sum_w_[c];
    }
  }
  return members_;
}

absl::StatusOr<KMeansTree> KMeansTree::Build(WeightedPoints points, std::vector<uint32_t> codes, int code_words,
                                             CancelCheck* cancel) {
  const size_t n = points.size();
  // Up to 2n - 1 nodes, numbered in 32 bits.
  if (n > (size_t{1} << 31) - 1) {
    return absl::ResourceExhaustedError(
        absl::StrCat("vector k-means: ", n, " distinct vectors; at most 2^31 - 1 are supported"));
  }
  if (points.dim < 1 || points.x.size() != n * static_cast<size_t>(points.dim)) {
    return absl::InvalidArgumentError(absl::StrCat("KMeansTree: ", points.x.size(), " coordinates for ", n,
                                                   " points of dimension ", points.dim));
  }
  for (double w : points.weight) {
    if (!(w > 0) || !std::isfinite(w)) return absl::InvalidArgumentError(absl::StrCat("KMeansTree: weight ", w));
  }
  if (code_words < 1 || codes.size() != n * static_cast<size_t>(code_words)) {
    return absl::InvalidArgumentError(absl::StrCat("KMeansTree: ", codes.size(), " code words for ", n,
                                                   " points of ", code_words, " words each"));
  }
  KMeansTree tree;
  tree.cancel_ = cancel;
  tree.points_ = std::move(points);
  tree.codes_ = std::move(codes);
  tree.code_words_ = code_words;
  if (n > 0) {
    const size_t dim = tree.points_.dim;
    const size_t expected = 2 * (n / kLeafSize + 1) + 64;
    tree.nodes_.reserve(expected);
    tree.lo_.reserve(expected * dim);
    tree.hi_.reserve(expected * dim);
    tree.mean_.reserve(expected * dim);
    tree.BuildNode(0, static_cast<uint32_t>(n), 0);
    if (tree.cancelled()) return CancelledStatus();
  }
  std::vector<uint32_t>().swap(tree.codes_);
  tree.owner_.assign(tree.nodes_.size(), -1);
  return tree;
}

uint32_t KMeansTree::BuildNode(uint32_t begin, uint32_t end, int depth) {
  max_depth_ = std::max(max_depth_, depth);
  const uint32_t id = static_cast<uint32_t>(nodes_.size());
  nodes_.push_back(Node{begin, end, 0, id + 1, 0, 0});
  const size_t dim = points_.dim;
  lo_.resize((id + 1) * dim);
  hi_.resize((id + 1) * dim);
  mean_.resize((id + 1) * dim);
  if (end - begin <= kLeafSize) {
    LeafStatistics(id);
    return id;
  }
  // The highest bit in which the run's codes differ splits it: sorted, the
  // codes with that bit clear come first. A run of one code (possible only
  // when codes are coarser than the points) is halved by count.
  const size_t words = code_words_;
  const uint32_t* first = &codes_[begin * words];
  const uint32_t* last = &codes_[(end - 1) * words];
  size_t word = 0;
  while (word < words && first[word] == last[word]) ++word;
  uint32_t middle = begin + (end - begin) / 2;
  if (word < words) {
    const uint32_t bit = uint32_t{1} << (31 - __builtin_clz(first[word] ^ last[word]));
    uint32_t lo = begin, hi = end - 1;  // codes_[lo] has the bit clear, codes_[hi] set
    while (hi - lo > 1) {
      const uint32_t mid = lo + (hi - lo) / 2;
      ((codes_[mid * words + word] & bit) == 0 ? lo : hi) = mid;
    }
    middle = hi;
  }
  BuildNode(begin, middle, depth + 1);
  if (cancelled()) return id;
  const uint32_t right = BuildNode(middle, end, depth + 1);
  nodes_[id].right = right;
  nodes_[id].skip = static_cast<uint32_t>(nodes_.size());
  Combine(id, id + 1, right);
  return id;
}

void KMeansTree::LeafStatistics(uint32_t id) {
  Node& node = nodes_[id];
  const int dim = points_.dim;
  float* lo = &lo_[static_cast<size_t>(id) * dim];
  float* hi = &hi_[static_cast<size_t>(id) * dim];
  double* mean = &mean_[static_cast<size_t>(id) * dim];
  double weight, scatter;
  if (dim == 2) {
    SummariseLeaf<2>(node.begin, node.end, dim, lo, hi, mean, &weight, &scatter);
  } else {
    SummariseLeaf<0>(node.begin, node.end, dim, lo, hi, mean, &weight, &scatter);
  }
  node.weight = weight;
  node.scatter = scatter;
  Stopped(cancel_, static_cast<int64_t>(node.end - node.begin) * dim * 4);
}

// kDim > 0: points of that many coordinates, box and sums in registers
// (the same sums in the same order as kDim = 0, which works in the
// node's arrays).
template <int kDim>
void KMeansTree::SummariseLeaf(uint32_t begin, uint32_t end, int dim_in, float* lo_out, float* hi_out,
                               double* mean_out, double* weight_out, double* scatter_out) const {
  const int dim = kDim > 0 ? kDim : dim_in;
  float lo_local[kDim > 0 ? kDim : 1], hi_local[kDim > 0 ? kDim : 1];
  double mean_local[kDim > 0 ? kDim : 1];
  float* const lo = kDim > 0 ? lo_local : lo_out;
  float* const hi = kDim > 0 ? hi_local : hi_out;
  double* const mean = kDim > 0 ? mean_local : mean_out;
  const float* first = points_.row(begin);
  std::copy_n(first, dim, lo);
  std::copy_n(first, dim, hi);
  std::fill_n(mean, dim, 0.0);
  double weight = 0;
  for (uint32_t i = begin; i < end; ++i) {
    const float* x = points_.row(i);
    const double w = points_.weight[i];
    weight += w;
    for (int t = 0; t < dim; ++t) {
      lo[t] = std::min(lo[t], x[t]);
      hi[t] = std::max(hi[t], x[t]);
      mean[t] += w * (static_cast<double>(x[t]) - static_cast<double>(first[t]));
    }
  }
  for (int t = 0; t < dim; ++t) mean[t] = static_cast<double>(first[t]) + mean[t] / weight;
  double scatter = 0;
  for (uint32_t i = begin; i < end; ++i) scatter += points_.weight[i] * SquaredDistance(points_.row(i), mean, dim);
  if constexpr (kDim > 0) {
    std::copy_n(lo, dim, lo_out);
    std::copy_n(hi, dim, hi_out);
    std::copy_n(mean, dim, mean_out);
  }
  *weight_out = weight;
  *scatter_out = scatter;
}

void KMeansTree::Combine(uint32_t id, uint32_t left, uint32_t right) {
  const int dim = points_.dim;
  const Node& a = nodes_[left];
  const Node& b = nodes_[right];
  const double weight = a.weight + b.weight;
  const double share = b.weight / weight;
  double apart = 0;
  for (int t = 0; t < dim; ++t) {
    const size_t at = static_cast<size_t>(id) * dim + t;
    const size_t la = static_cast<size_t>(left) * dim + t;
    const size_t ra = static_cast<size_t>(right) * dim + t;
    lo_[at] = std::min(lo_[la], lo_[ra]);
    hi_[at] = std::max(hi_[la], hi_[ra]);
    const double step = mean_[ra] - mean_[la];
    mean_[at] = mean_[la] + step * share;
    apart += step * step;
  }
  // Scatter about the joint mean (the parallel-axis rule).
  nodes_[id].weight = weight;
  nodes_[id].scatter = a.scatter + b.scatter + a.weight * share * apart;
}

void KMeansTree::ForgetOwners() { std::fill(owner_.begin(), owner_.end(), -1); }

struct KMeansTree::Pass {
  const double* centroids;
  size_t k;
  std::vector<int32_t>* assignment;
  ClusterSums* sums;
  size_t changed = 0;
  double sse = 0;
  std::vector<double> row;     // a point widened to double
  std::vector<double> centre;  // a box's centre
};

double KMeansTree::Assign(const std::vector<double>& centroids, int k, std::vector<int32_t>* assignment,
                          size_t* changed, ClusterSums* sums) {
  const int dim = points_.dim;
  Pass pass{centroids.data(), static_cast<size_t>(k), assignment, sums};
  pass.row.resize(dim);
  pass.centre.resize(dim);
  points_searched_ = 0;
  distances_ = 0;
  if (sums != nullptr) sums->Reset(k, dim);
  candidates_.assign(static_cast<size_t>(max_depth_ + 2) * k, 0);
  std::iota(candidates_.begin(), candidates_.begin() + k, 0);
  if (!nodes_.empty()) {
    switch (dim) {  // the usual vector sizes unrolled
      case 2:
        Visit<2>(pass, 0, 0, k);
        break;
      case 4:
        Visit<4>(pass, 0, 0, k);
        break;
      case 8:
        Visit<8>(pass, 0, 0, k);
        break;
      default:
        Visit<0>(pass, 0, 0, k);
    }
  }
  *changed = pass.changed;
  return pass.sse;
}

template <int kDim>
void KMeansTree::Visit(Pass& pass, uint32_t id, int depth, int candidates) {
  const int dim = kDim > 0 ? kDim : points_.dim;
  const size_t k = pass.k;
  if (Stopped(cancel_, static_cast<int64_t>(candidates) * dim * 2)) return;
  const Node& node = nodes_[id];
  const float* lo = &lo_[static_cast<size_t>(id) * dim];
  const float* hi = &hi_[static_cast<size_t>(id) * dim];
  const int32_t* list = &candidates_[depth * k];
  int32_t* kept = &candidates_[(depth + 1) * k];
  // The candidate nearest the box's centre; every other one that cannot be
  // nearer anywhere in the box is dropped.
  int32_t nearest = list[0];
  int count = 0;
  if (candidates > 1) {
    for (int t = 0; t < dim; ++t) pass.centre[t] = 0.5 * (static_cast<double>(lo[t]) + static_cast<double>(hi[t]));
    double best = std::numeric_limits<double>::infinity();
    distances_ += 2 * static_cast<size_t>(candidates);  // the centre's, and the box tests
    for (int j = 0; j < candidates; ++j) {
      const double d = SquaredDistance(pass.centre.data(), pass.centroids + static_cast<size_t>(list[j]) * dim, dim);
      if (d < best) {
        best = d;
        nearest = list[j];
      }
    }
    const double* near = pass.centroids + static_cast<size_t>(nearest) * dim;
    for (int j = 0; j < candidates; ++j) {
      if (list[j] == nearest || !FartherOnWholeBox(pass.centroids + static_cast<size_t>(list[j]) * dim, near, lo, hi, dim)) {
        kept[count++] = list[j];  // in index order, as `list` is
      }
    }
  } else {
    count = 1;
  }
  if (count == 1) {
    Own(pass, id, nearest);
    return;
  }
  owner_[id] = -1;
  if (node.right != 0) {
    Visit<kDim>(pass, id + 1, depth + 1, count);
    Visit<kDim>(pass, node.right, depth + 1, count);
    return;
  }
  points_searched_ += node.end - node.begin;
  distances_ += static_cast<size_t>(node.end - node.begin) * count;
  SearchLeaf<kDim>(pass, node, kept, count);
  Stopped(cancel_, static_cast<int64_t>(node.end - node.begin) * count * dim);
}

// The points are searched among the kept candidates in index order, so
// that ties go to the lowest index.
template <int kDim>
void KMeansTree::SearchLeaf(Pass& pass, const Node& node, const int32_t* kept, int count) {
  const int dim = kDim > 0 ? kDim : points_.dim;
  double* const row = pass.row.data();
  // Locals, so the stores to `row` cannot make them round-trip memory (the
  // same additions in the same order as on `pass`).
  double sse = pass.sse;
  size_t changed = pass.changed;
  for (uint32_t i = node.begin; i < node.end; ++i) {
    const float* x = points_.row(i);
    for (int t = 0; t < dim; ++t) row[t] = x[t];
    int32_t best = kept[0];
    double best_d = SquaredDistance(row, pass.centroids + static_cast<size_t>(best) * dim, dim);
    for (int j = 1; j < count; ++j) {
      const double d = SquaredDistance(row, pass.centroids + static_cast<size_t>(kept[j]) * dim, dim);
      if (d < best_d) {
        best_d = d;
        best = kept[j];
      }
    }
    int32_t& assigned = (*pass.assignment)[i];
    if (assigned != best) {
      ++changed;
      assigned = best;
    }
    const double w = points_.weight[i];
    sse += w * best_d;
    if (pass.sums != nullptr) pass.sums->AddPoint<kDim>(row, w, best);
  }
  pass.sse = sse;
  pass.changed = changed;
}

void KMeansTree::Own(Pass& pass, uint32_t id, int cluster) {
  const int dim = points_.dim;
  const Node& node = nodes_[id];
  const double* mean = &mean_[static_cast<size_t>(id) * dim];
  pass.sse += node.scatter + node.weight * SquaredDistance(mean, pass.centroids + static_cast<size_t>(cluster) * dim, dim);
  if (pass.sums != nullptr) pass.sums->Add(mean, node.weight, node.end - node.begin, cluster);
  if (owner_[id] == cluster) return;  // so is every point below it
  std::fill(owner_.begin() + id, owner_.begin() + node.skip, cluster);
  for (uint32_t i = node.begin; i < node.end; ++i) {
    int32_t& assigned = (*pass.assignment)[i];
    if (assigned != cluster) {
      ++pass.changed;
      assigned = cluster;
    }
  }
  Stopped(cancel_, static_cast<int64_t>(node.end - node.begin) + (node.skip - id));
}

}  // namespace coremlz::compress
