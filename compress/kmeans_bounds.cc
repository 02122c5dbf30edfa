#include "compress/kmeans_bounds.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "compress/squared_distance.h"

namespace coremlz::compress {
namespace {

// The margins absorb rounding in distances and bounds, so a skipped point
// is strictly nearest to its centroid in exact arithmetic too.
constexpr double kMargin = 1e-9;
// Cancellation is polled once per this many points + 1.
constexpr size_t kPollMask = 1023;

}  // namespace

KMeansBounds::KMeansBounds(const WeightedPoints& points, int k, CancelCheck* cancel)
    : p_(points), k_(k), cancel_(cancel), lower_(points.size(), 0), half_gap_(k), moved_(k), row_(points.dim) {}

double KMeansBounds::Assign(const std::vector<double>& before, const std::vector<double>& centroids,
                            std::vector<int32_t>* assignment, size_t* changed, ClusterSums* sums) {
  const int dim = p_.dim;
  const bool first = first_;
  first_ = false;
  // How far each centroid moved; the largest two, so a point's own
  // centroid can be left out of the loosening of its lower bound.
  double max1 = 0, max2 = 0;
  int argmax1 = -1;
  if (!first) {
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
    double d2;
    if (first) {
      d2 = Search(i, centroids, assignment, changed);
    } else {
      const int a = (*assignment)[i];
      lower_[i] -= a == argmax1 ? max2 : max1;
      d2 = SquaredDistance(p_.row(i), &centroids[static_cast<size_t>(a) * dim], dim);
      // Compared squared (no square root per point); the margins cover the
      // few ulps the squaring adds.
      const double bound = std::max(half_gap_[a], lower_[i]) * (1 - kMargin);
      if (!(bound > 0 && d2 * ((1 + kMargin) * (1 + kMargin)) < bound * bound)) {
        d2 = Search(i, centroids, assignment, changed);
      }
    }
    sse += p_.weight[i] * d2;
    if (sums != nullptr) {
      std::copy_n(p_.row(i), dim, row_.begin());
      sums->Add(row_.data(), p_.weight[i], 1, (*assignment)[i]);
    }
    // Charged as if every point were searched: a bound, not a count.
    if ((i & kPollMask) == kPollMask && Stopped(cancel_, (kPollMask + 1) * k_ * dim)) return sse;
  }
  return sse;
}

double KMeansBounds::Search(size_t i, const std::vector<double>& centroids, std::vector<int32_t>* assignment,
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

}  // namespace coremlz::compress
