// Weighted k-means (Lloyd) over the distinct vectors of a tensor.
//
// The procedure is fully specified so that it is reproducible (and so tests
// can mirror it):
//  1. Distinct vectors: rows are stable-sorted lexicographically by value
//     (-0 equals +0; the first occurrence's bits represent a group) and
//     equal rows are merged; weight = multiplicity. Working on the sorted
//     distinct set makes the result independent of row order.
//  2. If there are at most k distinct vectors they are the centroids.
//  3. k-means++ seeding with std::mt19937_64(seed). A draw is
//     u = (rng() >> 11) * 2^-53 in [0, 1). The first centre is the first
//     point i (in sorted order) whose running sum of weights exceeds
//     u * total weight; each further centre is the first point whose running
//     sum of w_i * D_i^2 exceeds u * sum(w * D^2), where D_i is the distance
//     to the nearest centre so far (squared distances summed over dimensions
//     in order, in double).
//  4. Lloyd iterations in double: assign each point to its nearest centroid
//     (lowest index on ties), then move centroids to weighted means. A
//     cluster left empty takes the point farthest from its own (updated)
//     centroid among clusters that still have two or more points (lowest
//     index on ties), which strictly lowers the SSE; then means are
//     recomputed. Stop when no assignment changes, when the relative SSE
//     improvement drops below `tolerance`, or after `max_iterations`.
//  5. Centroids are rounded to float, every vector is assigned to its nearest
//     rounded centroid, and the SSE is measured against those, so the result
//     is exactly self-consistent.
// The assignment step skips the full search for a point whose current
// centroid is provably the strictly nearest (Hamerly's bounds: half the gap
// to the closest other centroid, and a lower bound on the distance to the
// second-nearest centroid, loosened by how far centroids moved), so it
// produces exactly the assignments of plain Lloyd at a fraction of the
// O(points * k) cost once the clustering settles.
#include "compress/vector_kmeans.h"

#include <algorithm>
#include <cstring>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace coremlz::compress {
namespace {

// Distinct points (row-major, double) with their multiplicities.
struct Points {
  int dim = 0;
  // count x dim, as given (floats): half the memory traffic of each
  // iteration's pass over the points; every use widens them exactly.
  std::vector<float> x;
  std::vector<double> weight;  // multiplicity
  std::vector<size_t> first;   // a representative input row for each point
  size_t size() const { return weight.size(); }
  const float* row(size_t i) const { return x.data() + i * dim; }
};

// In double whatever the operands' types.
template <typename A, typename B>
inline double SquaredDistance(const A* a, const B* b, int dim) {
  double sum = 0;
  for (int t = 0; t < dim; ++t) {
    const double d = static_cast<double>(a[t]) - static_cast<double>(b[t]);
    sum += d * d;
  }
  return sum;
}

// Merges runs of equal rows of `order` (rows sorted lexicographically,
// equal rows in input order) into weighted points.
template <typename Index, typename Less>
bool DistinctFromOrder(absl::Span<const float> data, int dim, const std::vector<Index>& order, Less row_less,
                       std::vector<int64_t>* row_to_point, CancelCheck* cancel, Points* out) {
  const size_t count = order.size();
  Points& points = *out;
  points.dim = dim;
  row_to_point->assign(count, -1);
  for (size_t r = 0; r < count; ++r) {
    if ((r & 4095) == 0 && Stopped(cancel, 4096 * 32)) return false;
    const size_t row = order[r];
    if (r == 0 || row_less(order[r - 1], row)) {
      points.first.push_back(row);
      points.weight.push_back(0);
      for (int t = 0; t < dim; ++t) points.x.push_back(data[row * dim + t]);
    }
    points.weight.back() += 1;
    (*row_to_point)[row] = static_cast<int64_t>(points.size() - 1);
  }
  return true;
}

// A float's bits as an unsigned key that sorts in the float's order, with
// -0 and +0 one key (they are equal values).
inline uint32_t OrderKey(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  if (v == 0) bits = 0;
  return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
}

// Row indices in lexicographic order of their values, equal rows in input
// order: exactly a stable sort with the lexicographic comparison, done as an
// LSD radix sort (16-bit digits, last dimension first), which is stable and
// linear. False when cancelled.
bool SortRows(absl::Span<const float> data, int dim, CancelCheck* cancel, std::vector<uint32_t>* order) {
  const size_t count = data.size() / dim;
  std::vector<uint32_t> keys(data.size());
  for (size_t i = 0; i < data.size(); ++i) keys[i] = OrderKey(data[i]);
  order->resize(count);
  std::iota(order->begin(), order->end(), uint32_t{0});
  std::vector<uint32_t> next(count);
  std::vector<uint32_t> start(65537);
  for (int t = dim - 1; t >= 0; --t) {
    for (int shift : {0, 16}) {
      if (Stopped(cancel, static_cast<int64_t>(count) * 8)) return false;
      std::fill(start.begin(), start.end(), 0);
      for (uint32_t r : *order) ++start[((keys[static_cast<size_t>(r) * dim + t] >> shift) & 0xffff) + 1];
      // A digit every row shares leaves the order as it is.
      if (*std::max_element(start.begin(), start.end()) == count) continue;
      for (size_t d = 1; d < start.size(); ++d) start[d] += start[d - 1];
      for (uint32_t r : *order) next[start[(keys[static_cast<size_t>(r) * dim + t] >> shift) & 0xffff]++] = r;
      order->swap(next);
    }
  }
  return true;
}

// Collapses equal rows; `row_to_point` maps every input row to its point.
// False when cancelled.
bool Distinct(absl::Span<const float> data, int dim, std::vector<int64_t>* row_to_point, CancelCheck* cancel,
              Points* out) {
  const size_t count = data.size() / dim;
  const auto row_less = [&](size_t a, size_t b) {
    return std::lexicographical_compare(data.begin() + a * dim, data.begin() + (a + 1) * dim,
                                        data.begin() + b * dim, data.begin() + (b + 1) * dim);
  };
  std::vector<uint32_t> order;
  if (count < (size_t{1} << 32)) {
    if (!SortRows(data, dim, cancel, &order)) return false;
  } else {  // beyond 32-bit row indices: the comparison sort
    std::vector<size_t> wide(count);
    std::iota(wide.begin(), wide.end(), size_t{0});
    if (!InterruptibleStableSort(wide, row_less, cancel)) return false;
    return DistinctFromOrder(data, dim, wide, row_less, row_to_point, cancel, out);
  }
  return DistinctFromOrder(data, dim, order, row_less, row_to_point, cancel, out);
}

double Uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1p-53; }

// First index whose running sum of mass exceeds u * total; falls back to the
// last index with positive mass if rounding leaves the target unreached.
size_t Sample(const std::vector<double>& mass, double u) {
  double total = 0;
  for (double m : mass) total += m;
  const double target = u * total;
  double running = 0;
  size_t last_positive = 0;
  for (size_t i = 0; i < mass.size(); ++i) {
    if (mass[i] > 0) last_positive = i;
    running += mass[i];
    if (running > target) return i;
  }
  return last_positive;
}

// Empty when cancelled.
std::vector<double> SeedKMeansPlusPlus(const Points& p, int k, uint64_t seed, CancelCheck* cancel) {
  const int dim = p.dim;
  if (Stopped(cancel, static_cast<int64_t>(p.size()) * (dim + 2))) return {};
  std::mt19937_64 rng(seed);
  std::vector<double> centroids(static_cast<size_t>(k) * dim);
  size_t pick = Sample(p.weight, Uniform01(rng));
  std::copy(p.row(pick), p.row(pick) + dim, centroids.begin());
  std::vector<double> d2(p.size());
  std::vector<double> mass(p.size());
  for (size_t i = 0; i < p.size(); ++i) d2[i] = SquaredDistance(p.row(i), p.row(pick), dim);
  for (int c = 1; c < k; ++c) {
    if (Stopped(cancel, static_cast<int64_t>(p.size()) * (dim + 2))) return {};
    for (size_t i = 0; i < p.size(); ++i) mass[i] = p.weight[i] * d2[i];
    // There are more distinct points than k, so some point has D > 0 and
    // already chosen points (D = 0) are never chosen again.
    pick = Sample(mass, Uniform01(rng));
    std::copy(p.row(pick), p.row(pick) + dim, centroids.begin() + static_cast<size_t>(c) * dim);
    for (size_t i = 0; i < p.size(); ++i) {
      d2[i] = std::min(d2[i], SquaredDistance(p.row(i), p.row(pick), dim));
    }
  }
  return centroids;
}

// Weighted means of the clusters, accumulated point by point in index order
// about each cluster's first point, so a one-point cluster reproduces that
// point exactly. Fed by the assignment pass as it assigns (one pass over
// the points per iteration instead of two), or by UpdateMeans.
class MeanSums {
 public:
  void Reset(int k, int dim) {
    dim_ = dim;
    members_.assign(k, 0);
    anchor_.assign(k, -1);
    sum_w_.assign(k, 0);
    sum_wd_.assign(static_cast<size_t>(k) * dim, 0);
  }
  void Add(const Points& p, size_t i, int c) {
    if (anchor_[c] < 0) anchor_[c] = static_cast<int64_t>(i);
    ++members_[c];
    sum_w_[c] += p.weight[i];
    const float* a = p.row(anchor_[c]);
    const float* x = p.row(i);
    double* sum = &sum_wd_[static_cast<size_t>(c) * dim_];
    for (int t = 0; t < dim_; ++t) sum[t] += p.weight[i] * (static_cast<double>(x[t]) - static_cast<double>(a[t]));
  }
  // Moves the centroids of non-empty clusters to their means; returns the
  // number of points per cluster.
  const std::vector<int64_t>& Finish(const Points& p, std::vector<double>* centroids) const {
    const int k = static_cast<int>(members_.size());
    for (int c = 0; c < k; ++c) {
      if (members_[c] == 0) continue;  // left for the caller to re-seed
      const float* a = p.row(anchor_[c]);
      for (int t = 0; t < dim_; ++t) {
        (*centroids)[static_cast<size_t>(c) * dim_ + t] =
            static_cast<double>(a[t]) + sum_wd_[static_cast<size_t>(c) * dim_ + t] / sum_w_[c];
      }
    }
    return members_;
  }

 private:
  int dim_ = 0;
  std::vector<int64_t> members_;
  std::vector<int64_t> anchor_;
  std::vector<double> sum_w_, sum_wd_;
};

// Lloyd's assignment step with pruning. lower_[i] bounds from below the
// distance from point i to every centroid other than its own.
class Assigner {
 public:
  Assigner(const Points& p, int k, CancelCheck* cancel)
      : p_(p), k_(k), cancel_(cancel), lower_(p.size(), 0), half_gap_(k), moved_(k), row_(p.dim) {}

  // Assigns every point by full search; returns the weighted SSE and counts
  // changed assignments. Check cancelled() after each pass: a cancelled pass
  // stops part way. `sums` (optional) receives the new clusters' sums.
  double Full(const std::vector<double>& centroids, std::vector<int32_t>* assignment,
              size_t* changed, MeanSums* sums) {
    double sse = 0;
    *changed = 0;
    if (sums != nullptr) sums->Reset(k_, p_.dim);
    for (size_t i = 0; i < p_.size(); ++i) {
      sse += p_.weight[i] * Search(i, centroids, assignment, changed);
      if (sums != nullptr) sums->Add(p_, i, (*assignment)[i]);
      if ((i & kPollMask) == kPollMask && Stopped(cancel_, (kPollMask + 1) * k_ * p_.dim)) return sse;
    }
    return sse;
  }

  bool cancelled() const { return cancel_ != nullptr && cancel_->cancelled(); }

  // Same result as Full after the centroids moved from `before` to
  // `centroids`. Points whose assignment was changed by hand must have had
  // Invalidate() called.
  double Step(const std::vector<double>& before, const std::vector<double>& centroids,
              std::vector<int32_t>* assignment, size_t* changed, MeanSums* sums) {
    const int dim = p_.dim;
    // How far each centroid moved; the largest two, so a point's own
    // centroid can be left out of the loosening of its lower bound.
    double max1 = 0, max2 = 0;
    int argmax1 = -1;
    for (int c = 0; c < k_; ++c) {
      const size_t o = static_cast<size_t>(c) * dim;
      moved_[c] = std::sqrt(SquaredDistance(&before[o], &centroids[o], dim));
      if (moved_[c] > max1) {
        max2 = max1;
        max1 = moved_[c];
        argmax1 = c;
      } else {
        max2 = std::max(max2, moved_[c]);
      }
    }
    // Half the distance from each centroid to its nearest other centroid: a
    // point closer than that to its centroid is nearest to it.
    std::fill(half_gap_.begin(), half_gap_.end(), std::numeric_limits<double>::infinity());
    for (int a = 0; a < k_; ++a) {
      for (int b = a + 1; b < k_; ++b) {
        const double d = 0.5 * std::sqrt(SquaredDistance(&centroids[static_cast<size_t>(a) * dim],
                                                         &centroids[static_cast<size_t>(b) * dim], dim));
        half_gap_[a] = std::min(half_gap_[a], d);
        half_gap_[b] = std::min(half_gap_[b], d);
      }
    }
    double sse = 0;
    *changed = 0;
    if (sums != nullptr) sums->Reset(k_, dim);
    for (size_t i = 0; i < p_.size(); ++i) {
      const int a = (*assignment)[i];
      lower_[i] -= a == argmax1 ? max2 : max1;
      const double d2 = SquaredDistance(p_.row(i), &centroids[static_cast<size_t>(a) * dim], dim);
      // The margins absorb rounding in distances and bounds, so a skipped
      // point is strictly nearest to its centroid in exact arithmetic too.
      // Compared squared (no square root per point); the margins cover the
      // few ulps the squaring adds.
      const double bound = std::max(half_gap_[a], lower_[i]) * (1 - kMargin);
      if (bound > 0 && d2 * ((1 + kMargin) * (1 + kMargin)) < bound * bound) {
        sse += p_.weight[i] * d2;
      } else {
        sse += p_.weight[i] * Search(i, centroids, assignment, changed);
      }
      if (sums != nullptr) sums->Add(p_, i, (*assignment)[i]);
      // Charged as if every point were searched: a bound, not a count.
      if ((i & kPollMask) == kPollMask && Stopped(cancel_, (kPollMask + 1) * k_ * p_.dim)) return sse;
    }
    return sse;
  }

  void Invalidate(size_t i) { lower_[i] = 0; }

 private:
  static constexpr double kMargin = 1e-9;
  // Cancellation is polled once per this many points + 1.
  static constexpr size_t kPollMask = 1023;

  // Full search for point i (lowest index on ties); sets its lower bound
  // and returns its squared distance.
  double Search(size_t i, const std::vector<double>& centroids, std::vector<int32_t>* assignment,
                size_t* changed) {
    const int dim = p_.dim;
    // The point widened once, not once per centroid.
    const float* row = p_.row(i);
    for (int t = 0; t < dim; ++t) row_[t] = row[t];
    int best = 0;
    double best_d = std::numeric_limits<double>::infinity();
    double second_d = std::numeric_limits<double>::infinity();
    for (int c = 0; c < k_; ++c) {
      const double d = SquaredDistance(row_.data(), &centroids[static_cast<size_t>(c) * dim], dim);
      if (d < best_d) {
        second_d = best_d;
        best_d = d;
        best = c;
      } else {
        second_d = std::min(second_d, d);
      }
    }
    if ((*assignment)[i] != best) ++*changed;
    (*assignment)[i] = best;
    lower_[i] = std::sqrt(second_d);
    return best_d;
  }

  const Points& p_;
  const int k_;
  CancelCheck* const cancel_;
  std::vector<double> lower_;
  std::vector<double> half_gap_;
  std::vector<double> moved_;
  std::vector<double> row_;  // Search's point, in double
};

// Weighted means of the clusters from scratch (after assignments were
// changed by hand). Returns the number of points per cluster.
std::vector<int64_t> UpdateMeans(const Points& p, const std::vector<int32_t>& assignment, int k,
                                 std::vector<double>* centroids) {
  MeanSums sums;
  sums.Reset(k, p.dim);
  for (size_t i = 0; i < p.size(); ++i) sums.Add(p, i, assignment[i]);
  return sums.Finish(p, centroids);
}

// Moves centroids to cluster means (`sums`, accumulated over the current
// assignment), re-seeding empty clusters.
// Returns early (centroids partly updated) when cancelled.
void Update(const Points& p, int k, const MeanSums& sums, std::vector<int32_t>* assignment,
            std::vector<double>* centroids, Assigner* assigner, CancelCheck* cancel) {
  const int dim = p.dim;
  std::vector<int64_t> members = sums.Finish(p, centroids);
  bool any_empty = false;
  for (int c = 0; c < k; ++c) any_empty |= members[c] == 0;
  if (!any_empty) return;
  std::vector<double> dist(p.size());
  for (size_t i = 0; i < p.size(); ++i) {
    const int c = (*assignment)[i];
    dist[i] = SquaredDistance(p.row(i), centroids->data() + static_cast<size_t>(c) * dim, dim);
  }
  for (int e = 0; e < k; ++e) {
    if (members[e] != 0) continue;
    if (Stopped(cancel, static_cast<int64_t>(p.size()))) return;
    // Only clusters with >= 2 points give one up, so none empties in turn;
    // since #points > k such a cluster exists and one of its points is off
    // its mean.
    int64_t far = -1;
    for (size_t i = 0; i < p.size(); ++i) {
      if (members[(*assignment)[i]] < 2) continue;
      if (far < 0 || dist[i] > dist[far]) far = static_cast<int64_t>(i);
    }
    --members[(*assignment)[far]];
    (*assignment)[far] = e;
    assigner->Invalidate(far);
    members[e] = 1;
    dist[far] = 0;
  }
  UpdateMeans(p, *assignment, k, centroids);
}

absl::Status Validate(absl::Span<const float> data, int dim, int k,
                      const VectorKMeansOptions& options) {
  if (dim < 1) return absl::InvalidArgumentError(absl::StrCat("VectorKMeans: dim must be >= 1, got ", dim));
  if (k < 1) return absl::InvalidArgumentError(absl::StrCat("VectorKMeans: k must be >= 1, got ", k));
  if (data.size() % static_cast<size_t>(dim) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("VectorKMeans: data has ", data.size(),
                                                   " values, not a multiple of dim = ", dim));
  }
  if (options.max_iterations < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("VectorKMeans: max_iterations must be >= 0, got ", options.max_iterations));
  }
  if (!(options.tolerance >= 0) || !std::isfinite(options.tolerance)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "VectorKMeans: tolerance must be finite and >= 0, got ", options.tolerance));
  }
  for (size_t i = 0; i < data.size(); ++i) {
    if (!std::isfinite(data[i])) {
      return absl::InvalidArgumentError(absl::StrCat("VectorKMeans: data[", i, "] (row ", i / dim,
                                                     ") = ", data[i], " is not finite"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<VectorKMeansResult> VectorKMeans(absl::Span<const float> data, int dim, int k,
                                                const VectorKMeansOptions& options) {
  if (absl::Status status = Validate(data, dim, k, options); !status.ok()) return status;
  CancelCheck* const cancel = options.cancel;
  std::vector<int64_t> row_to_point;
  Points points;
  if (!Distinct(data, dim, &row_to_point, cancel, &points)) return CancelledStatus();
  const size_t count = row_to_point.size();

  VectorKMeansResult result;
  result.assignment.resize(count);
  if (points.size() <= static_cast<size_t>(k)) {
    result.centroids.resize(points.size() * dim);
    for (size_t i = 0; i < points.size(); ++i) {
      const float* src = data.data() + points.first[i] * dim;
      std::copy(src, src + dim, result.centroids.begin() + i * dim);
    }
    for (size_t r = 0; r < count; ++r) result.assignment[r] = static_cast<int32_t>(row_to_point[r]);
    return result;
  }

  std::vector<double> centroids = SeedKMeansPlusPlus(points, k, options.seed, cancel);
  if (centroids.empty()) return CancelledStatus();
  std::vector<int32_t> assignment(points.size(), -1);
  Assigner assigner(points, k, cancel);
  size_t changed = 0;
  MeanSums sums;
  double sse = assigner.Full(centroids, &assignment, &changed, &sums);
  if (assigner.cancelled()) return CancelledStatus();
  int iterations = 0;
  std::vector<double> before;
  while (iterations < options.max_iterations) {
    before = centroids;
    Update(points, k, sums, &assignment, &centroids, &assigner, cancel);
    if (assigner.cancelled()) return CancelledStatus();
    const double previous = sse;
    sse = assigner.Step(before, centroids, &assignment, &changed, &sums);
    if (assigner.cancelled()) return CancelledStatus();
    ++iterations;
    if (changed == 0 || previous - sse <= options.tolerance * previous) break;
  }

  // Round to float and make the assignment and SSE consistent with what is
  // returned; reassigning can only lower the SSE for these centroids.
  result.iterations = iterations;
  result.centroids.resize(static_cast<size_t>(k) * dim);
  before = centroids;
  for (size_t i = 0; i < result.centroids.size(); ++i) {
    result.centroids[i] = static_cast<float>(centroids[i]);
    centroids[i] = result.centroids[i];
  }
  result.sse = assigner.Step(before, centroids, &assignment, &changed, nullptr);
  if (assigner.cancelled()) return CancelledStatus();
  for (size_t r = 0; r < count; ++r) result.assignment[r] = assignment[row_to_point[r]];
  return result;
}

}  // namespace coremlz::compress
