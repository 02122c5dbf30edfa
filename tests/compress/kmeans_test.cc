// Tests for the exact 1-D k-means and the vector k-means, against slow,
// obvious references: brute force over all contiguous partitions, a plain
// O(k n^2) DP, and straightforward Lloyd implementations.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "compress/kmeans1d.h"
#include "compress/vector_kmeans.h"
#include "format/fp16.h"
#include "gtest/gtest.h"

namespace coremlz::compress {
namespace {

using Real = long double;  // references work in extended precision

// ---------------------------------------------------------------------------
// 1-D references

// Weighted SSE of values[a..b) about their mean: two passes over values
// shifted by the run's first value (exact in long double for nearby values),
// so tight runs far from zero (1e8 + small) keep their precision.
Real RunCost(const std::vector<double>& v, const std::vector<double>& w, int a, int b) {
  Real sw = 0, swx = 0;
  for (int i = a; i < b; ++i) {
    sw += w[i];
    swx += w[i] * (static_cast<Real>(v[i]) - v[a]);
  }
  const Real mean = swx / sw;
  Real sse = 0;
  for (int i = a; i < b; ++i) {
    const Real d = (static_cast<Real>(v[i]) - v[a]) - mean;
    sse += w[i] * d * d;
  }
  return sse;
}

// Minimum SSE over every split of the n values into min(k, n) contiguous runs.
Real BruteForce(const std::vector<double>& v, const std::vector<double>& w, int k) {
  const int n = static_cast<int>(v.size());
  if (n <= k) return 0;
  Real best = std::numeric_limits<Real>::infinity();
  // Choose k-1 cut positions among 1..n-1, as the set bits of a mask.
  for (uint32_t mask = 0; mask < (1u << (n - 1)); ++mask) {
    if (__builtin_popcount(mask) != k - 1) continue;
    Real sse = 0;
    int start = 0;
    for (int cut = 1; cut <= n; ++cut) {
      if (cut == n || (mask >> (cut - 1)) & 1) {
        sse += RunCost(v, w, start, cut);
        start = cut;
      }
    }
    best = std::min(best, sse);
  }
  return best;
}

// Plain O(k n^2) DP; run costs from Welford's update (stable) per start.
Real QuadraticDp(const std::vector<double>& v, const std::vector<double>& w, int k) {
  const int n = static_cast<int>(v.size());
  if (n <= k) return 0;
  std::vector<std::vector<Real>> cost(n, std::vector<Real>(n + 1, 0));
  for (int s = 0; s < n; ++s) {
    Real sw = 0, mean = 0, m2 = 0;  // of the values shifted by v[s]
    for (int j = s; j < n; ++j) {
      const Real x = static_cast<Real>(v[j]) - v[s];
      const Real nw = sw + w[j];
      const Real delta = x - mean;
      const Real new_mean = mean + delta * w[j] / nw;
      m2 += w[j] * delta * (x - new_mean);
      sw = nw;
      mean = new_mean;
      cost[s][j + 1] = m2;
    }
  }
  const Real inf = std::numeric_limits<Real>::infinity();
  std::vector<Real> prev(n + 1, inf), cur(n + 1, inf);
  for (int j = 1; j <= n; ++j) prev[j] = cost[0][j];
  for (int m = 2; m <= k; ++m) {
    std::fill(cur.begin(), cur.end(), inf);
    for (int j = m; j <= n; ++j) {
      for (int s = m - 1; s < j; ++s) cur[j] = std::min(cur[j], prev[s] + cost[s][j]);
    }
    std::swap(prev, cur);
  }
  return prev[n];
}

// Weighted Lloyd in 1-D from weighted k-means++ seeding; returns the SSE.
Real Lloyd1D(const std::vector<double>& v, const std::vector<double>& w, int k, uint64_t seed) {
  const int n = static_cast<int>(v.size());
  if (n <= k) return 0;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unif(0, 1);
  auto draw = [&](const std::vector<Real>& mass) {
    const Real total = std::accumulate(mass.begin(), mass.end(), Real{0});
    Real target = unif(rng) * total, run = 0;
    for (int i = 0; i < n; ++i) {
      run += mass[i];
      if (run > target && mass[i] > 0) return i;
    }
    for (int i = n - 1; i >= 0; --i) if (mass[i] > 0) return i;
    return 0;
  };
  std::vector<Real> c;
  std::vector<Real> mass(w.begin(), w.end());
  std::vector<Real> nearest(n, std::numeric_limits<Real>::infinity());
  c.push_back(v[draw(mass)]);
  while (static_cast<int>(c.size()) < k) {
    for (int i = 0; i < n; ++i) {
      nearest[i] = std::min(nearest[i], (v[i] - c.back()) * (v[i] - c.back()));
      mass[i] = w[i] * nearest[i];
    }
    c.push_back(v[draw(mass)]);
  }
  // Lloyd iterations; centroids kept sorted so the nearest is found by
  // binary search. Stops when the SSE no longer decreases.
  Real sse = std::numeric_limits<Real>::infinity();
  for (int iter = 0; iter < 300; ++iter) {
    std::sort(c.begin(), c.end());
    std::vector<Real> sw(k, 0), swx(k, 0);
    Real next = 0;
    for (int i = 0; i < n; ++i) {
      int j = static_cast<int>(std::lower_bound(c.begin(), c.end(), static_cast<Real>(v[i])) - c.begin());
      if (j == k || (j > 0 && v[i] - c[j - 1] <= c[j] - v[i])) --j;
      sw[j] += w[i];
      swx[j] += w[i] * static_cast<Real>(v[i]);
      next += w[i] * (v[i] - c[j]) * (v[i] - c[j]);
    }
    if (!(next < sse)) break;
    sse = next;
    for (int j = 0; j < k; ++j) {
      if (sw[j] > 0) c[j] = swx[j] / sw[j];
    }
  }
  return sse;
}

// Checks everything the result promises besides optimality; returns the SSE
// of its partition about the exact run means (what the references compute).
// The reported SSE is about the double centroids, which may exceed that by
// the centroids' rounding: at most sum over runs of W * (ulp / 2)^2.
Real CheckResult(const std::vector<double>& v, const std::vector<double>& w, int k,
                 const KMeans1DResult& r) {
  const int n = static_cast<int>(v.size());
  const int clusters = std::min(k, n);
  EXPECT_EQ(static_cast<int>(r.centroids.size()), clusters);
  EXPECT_EQ(static_cast<int>(r.cluster.size()), n);
  if (static_cast<int>(r.centroids.size()) != clusters || static_cast<int>(r.cluster.size()) != n) {
    return 0;
  }
  for (int c = 1; c < clusters; ++c) EXPECT_LT(r.centroids[c - 1], r.centroids[c]);
  // Clusters are contiguous runs numbered in order, none empty.
  for (int i = 0; i < n; ++i) {
    const int expected_min = i == 0 ? 0 : r.cluster[i - 1];
    EXPECT_TRUE(r.cluster[i] == expected_min || r.cluster[i] == expected_min + 1) << i;
  }
  if (n > 0) {
    EXPECT_EQ(r.cluster.front(), 0);
    EXPECT_EQ(r.cluster.back(), clusters - 1);
  }
  Real partition = 0, at_centroids = 0, rounding = 0;
  for (int c = 0, a = 0; c < clusters; ++c) {
    int b = a;
    while (b < n && r.cluster[b] == c) ++b;
    // Each centroid is the weighted mean of its run, correctly rounded or
    // nearly so.
    Real sw = 0, swx = 0;
    for (int i = a; i < b; ++i) {
      sw += w[i];
      swx += w[i] * (static_cast<Real>(v[i]) - v[a]);
    }
    const Real mean = v[a] + swx / sw;
    const double ulp = std::nextafter(std::fabs(r.centroids[c]), 1e308) - std::fabs(r.centroids[c]);
    // Allow for the reference's own rounding (64-bit mantissa).
    const Real reference_error = 0x1p-62L * (std::fabs(static_cast<Real>(v[a])) + std::fabs(swx / sw));
    EXPECT_LE(std::fabs(r.centroids[c] - mean), ulp + reference_error) << "cluster " << c;
    rounding += sw * ulp * ulp;
    partition += RunCost(v, w, a, b);
    for (int i = a; i < b; ++i) {
      const Real d = static_cast<Real>(v[i]) - r.centroids[c];
      at_centroids += w[i] * d * d;
    }
    a = b;
  }
  EXPECT_LE(std::fabs(r.sse - at_centroids), 1e-12 * at_centroids + 1e-300);
  EXPECT_GE(at_centroids, partition * (1 - 1e-12));
  EXPECT_LE(at_centroids, partition * (1 + 1e-12) + rounding);
  return partition;
}

void ExpectSameSse(Real actual, Real expected, const std::string& what) {
  EXPECT_LE(std::fabs(actual - expected), 1e-9 * expected + 1e-300)
      << what << ": got " << static_cast<double>(actual) << " want "
      << static_cast<double>(expected);
}

// Sorted distinct values with weights from several families, including
// adversarial ones.
struct Data {
  std::vector<double> values;
  std::vector<double> weights;
};

Data MakeData(int family, int n, std::mt19937_64& rng) {
  std::vector<double> raw;
  std::uniform_real_distribution<double> unif(0, 1);
  std::normal_distribution<double> normal(0, 1);
  switch (family % 7) {
    case 0:  // uniform reals
      for (int i = 0; i < n; ++i) raw.push_back(unif(rng) * 2 - 1);
      break;
    case 1:  // small integers: many exactly tied costs
      for (int i = 0; i < 4 * n; ++i) raw.push_back(static_cast<double>(rng() % (2 * n)));
      break;
    case 2:  // log-uniform over 1e-6 .. 1e4
      for (int i = 0; i < n; ++i) raw.push_back(std::exp(std::log(1e-6) + unif(rng) * std::log(1e10)));
      break;
    case 3:  // tight clusters far apart
      for (int i = 0; i < n; ++i) raw.push_back(1e3 * static_cast<double>(rng() % 4) + 1e-6 * normal(rng));
      break;
    case 4:  // large offset, small spread (centring precision)
      for (int i = 0; i < n; ++i) raw.push_back(1e8 + normal(rng));
      break;
    case 5:  // heavy tails
      for (int i = 0; i < n; ++i) raw.push_back(normal(rng) / (unif(rng) + 1e-3));
      break;
    case 6:  // normal
      for (int i = 0; i < n; ++i) raw.push_back(normal(rng));
      break;
  }
  std::sort(raw.begin(), raw.end());
  raw.erase(std::unique(raw.begin(), raw.end()), raw.end());
  while (static_cast<int>(raw.size()) > n) raw.erase(raw.begin() + rng() % raw.size());
  Data d;
  d.values = raw;
  for (size_t i = 0; i < raw.size(); ++i) {
    switch ((family / 7) % 4) {
      case 0: d.weights.push_back(1); break;
      case 1: d.weights.push_back(static_cast<double>(1 + rng() % 100)); break;
      case 2: d.weights.push_back(std::exp(unif(rng) * 20 - 10)); break;  // 4.5e-5 .. 2.2e4
      case 3: d.weights.push_back(rng() % 5 == 0 ? 1e9 : 1); break;      // heavy duplicates
    }
  }
  return d;
}

TEST(OptimalKMeans1DTest, MatchesBruteForceOnSmallInputs) {
  std::mt19937_64 rng(1);
  int cases = 0;
  for (int family = 0; family < 28; ++family) {
    for (int n = 1; n <= 12; ++n) {
      const Data d = MakeData(family, n, rng);
      const int m = static_cast<int>(d.values.size());
      for (int k = 1; k <= m + 1; ++k) {
        SCOPED_TRACE(testing::Message() << "family " << family << " n " << m << " k " << k);
        auto r = OptimalKMeans1D(d.values, d.weights, k);
        ASSERT_TRUE(r.ok()) << r.status();
        const Real sse = CheckResult(d.values, d.weights, k, *r);
        ExpectSameSse(sse, BruteForce(d.values, d.weights, k), "brute force");
        ++cases;
      }
    }
  }
  EXPECT_GT(cases, 1500);
}

TEST(OptimalKMeans1DTest, MatchesQuadraticDpOnMediumInputs) {
  std::mt19937_64 rng(2);
  for (int family = 0; family < 28; ++family) {
    const Data d = MakeData(family, 300, rng);
    for (int k : {2, 3, 5, 8, 16, 40, 120}) {
      SCOPED_TRACE(testing::Message() << "family " << family << " k " << k);
      auto r = OptimalKMeans1D(d.values, d.weights, k);
      ASSERT_TRUE(r.ok()) << r.status();
      const Real sse = CheckResult(d.values, d.weights, k, *r);
      ExpectSameSse(sse, QuadraticDp(d.values, d.weights, k), "quadratic DP");
    }
  }
}

// Long rows exercise the block pruning; compare with the plain DP there too.
TEST(OptimalKMeans1DTest, MatchesQuadraticDpOnLongerInputs) {
  std::mt19937_64 rng(3);
  for (int family : {0, 6, 9, 16, 23}) {
    const Data d = MakeData(family, 1500, rng);
    for (int k : {2, 4, 7}) {
      SCOPED_TRACE(testing::Message() << "family " << family << " k " << k);
      auto r = OptimalKMeans1D(d.values, d.weights, k);
      ASSERT_TRUE(r.ok()) << r.status();
      const Real sse = CheckResult(d.values, d.weights, k, *r);
      ExpectSameSse(sse, QuadraticDp(d.values, d.weights, k), "quadratic DP");
    }
  }
}

TEST(OptimalKMeans1DTest, NeverWorseThanLloyd) {
  std::mt19937_64 rng(4);
  std::vector<Data> sets;
  for (int family = 0; family < 28; ++family) sets.push_back(MakeData(family, 400, rng));
  sets.push_back({{-1, 1}, {1, 1}});
  sets.push_back({{0, 1e-300}, {3, 1}});
  sets.push_back({{-1e150, 1e150}, {1, 1e10}});
  for (const Data& d : sets) {
    for (int k : {1, 2, 3, 7, 16, 64, 401}) {
      SCOPED_TRACE(testing::Message() << "n " << d.values.size() << " first " << d.values[0] << " k " << k);
      auto r = OptimalKMeans1D(d.values, d.weights, k);
      ASSERT_TRUE(r.ok()) << r.status();
      const Real sse = CheckResult(d.values, d.weights, k, *r);
      for (uint64_t seed = 0; seed < 3; ++seed) {
        const Real lloyd = Lloyd1D(d.values, d.weights, k, seed);
        EXPECT_LE(sse, lloyd * (1 + 1e-9) + 1e-300) << "seed " << seed;
      }
    }
  }
}

TEST(OptimalKMeans1DTest, KAtLeastNKeepsEveryValue) {
  const std::vector<double> v = {-3, 0.5, 2, 7};
  const std::vector<double> w = {1, 2, 3, 4};
  for (int k : {4, 5, 256}) {
    auto r = OptimalKMeans1D(v, w, k);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->centroids, v);
    EXPECT_EQ(r->cluster, (std::vector<int32_t>{0, 1, 2, 3}));
    EXPECT_EQ(r->sse, 0);
  }
  auto empty = OptimalKMeans1D({}, {}, 3);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->centroids.empty());
  EXPECT_TRUE(empty->cluster.empty());
}

// Scaling keeps the arithmetic finite; only an SSE that is itself beyond the
// double range comes out as infinity (never NaN).
TEST(OptimalKMeans1DTest, HugeValuesStayFinite) {
  const std::vector<double> v = {-1e300, 1e300, 1.5e300};
  const std::vector<double> w = {1, 3, 1e-300};
  auto one = OptimalKMeans1D(v, w, 1);
  ASSERT_TRUE(one.ok());
  EXPECT_NEAR(one->centroids[0], 5e299, 1e285);
  EXPECT_EQ(one->sse, std::numeric_limits<double>::infinity());
  auto two = OptimalKMeans1D(v, w, 2);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->centroids[0], -1e300);
  EXPECT_EQ(two->cluster, (std::vector<int32_t>{0, 1, 1}));
  EXPECT_TRUE(std::isfinite(two->sse));
  EXPECT_NEAR(two->sse, 2.5e299, 1e285);  // 3 * 1e-300 / (3 + 1e-300) * (0.5e300)^2
  const std::vector<double> tiny = {1e-310, 2e-310, 5e-310, 6e-310};  // subnormal
  auto t = OptimalKMeans1D(tiny, {1, 1, 1, 1}, 2);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->cluster, (std::vector<int32_t>{0, 0, 1, 1}));
}

TEST(OptimalKMeans1DTest, OneClusterIsTheWeightedMean) {
  const std::vector<double> v = {1, 2, 4};
  const std::vector<double> w = {1, 1, 2};
  auto r = OptimalKMeans1D(v, w, 1);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->centroids.size(), 1u);
  EXPECT_DOUBLE_EQ(r->centroids[0], 2.75);
  EXPECT_EQ(r->cluster, (std::vector<int32_t>{0, 0, 0}));
  EXPECT_DOUBLE_EQ(r->sse, 1.75 * 1.75 + 0.75 * 0.75 + 2 * 1.25 * 1.25);
}

TEST(OptimalKMeans1DTest, TwoValuesTwoClusters) {
  auto r = OptimalKMeans1D(std::vector<double>{-1e-6, 1e4}, std::vector<double>{5, 1e-3}, 2);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->centroids, (std::vector<double>{-1e-6, 1e4}));
  EXPECT_EQ(r->sse, 0);
}

// Documented tie rule: the last cluster extends as far left as possible.
TEST(OptimalKMeans1DTest, TiesExtendLaterClustersLeftwards) {
  auto r = OptimalKMeans1D(std::vector<double>{0, 1, 2}, std::vector<double>{1, 1, 1}, 2);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->centroids, (std::vector<double>{0, 1.5}));
  EXPECT_EQ(r->cluster, (std::vector<int32_t>{0, 1, 1}));
  // Four equally spaced values, k = 3: three optimal partitions; the last
  // cluster takes two values.
  auto r3 = OptimalKMeans1D(std::vector<double>{0, 1, 2, 3}, std::vector<double>{1, 1, 1, 1}, 3);
  ASSERT_TRUE(r3.ok());
  EXPECT_EQ(r3->cluster, (std::vector<int32_t>{0, 1, 2, 2}));
}

TEST(OptimalKMeans1DTest, Deterministic) {
  std::mt19937_64 rng(5);
  const Data d = MakeData(8, 3000, rng);
  auto a = OptimalKMeans1D(d.values, d.weights, 16);
  auto b = OptimalKMeans1D(d.values, d.weights, 16);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->centroids, b->centroids);
  EXPECT_EQ(a->cluster, b->cluster);
  EXPECT_EQ(a->sse, b->sse);
}

// Histogram of fp16-rounded normal samples, the shape palettization sees.
// Checks correctness properties an optimum must have: every value is nearest
// to its own centroid (a Lloyd fixed point), moving any boundary value to the
// neighbouring cluster does not help, and Lloyd does no better.
TEST(OptimalKMeans1DTest, Fp16NormalHistogram) {
  std::mt19937_64 rng(6);
  std::normal_distribution<float> normal(0, 0.02f);
  std::vector<uint32_t> hist(65536, 0);
  for (int i = 0; i < 1000000; ++i) ++hist[format::FloatToHalf(normal(rng))];
  std::map<double, double> merged;  // -0 and +0 are one value
  for (uint32_t h = 0; h < 65536; ++h) {
    if (hist[h] != 0) merged[format::HalfToFloat(static_cast<uint16_t>(h))] += hist[h];
  }
  std::vector<double> v, w;
  for (const auto& [x, c] : merged) {
    v.push_back(x);
    w.push_back(c);
  }
  ASSERT_GT(v.size(), 10000u);
  for (int k : {4, 16, 64, 256}) {
    SCOPED_TRACE(testing::Message() << "k " << k);
    auto r = OptimalKMeans1D(v, w, k);
    ASSERT_TRUE(r.ok()) << r.status();
    const Real sse = CheckResult(v, w, k, *r);
    const int n = static_cast<int>(v.size());
    for (int i = 0; i < n; ++i) {
      const int c = r->cluster[i];
      const double d = std::fabs(v[i] - r->centroids[c]);
      if (c > 0) {
        EXPECT_LE(d, std::fabs(v[i] - r->centroids[c - 1])) << i;
      }
      if (c + 1 < k) {
        EXPECT_LE(d, std::fabs(v[i] - r->centroids[c + 1])) << i;
      }
    }
    // Moving a boundary value to the neighbouring cluster never helps. The
    // SSE change of removing x (weight wx) from a cluster of weight W and
    // mean m is -wx W / (W - wx) (x - m)^2; adding it, +wx W / (W + wx) (x - m)^2.
    std::vector<Real> cw(k, 0);
    for (int i = 0; i < n; ++i) cw[r->cluster[i]] += w[i];
    auto change = [&](int i, int from, int to) {
      const Real x = v[i], wx = w[i];
      const Real mf = r->centroids[from], mt = r->centroids[to];
      return wx * cw[to] / (cw[to] + wx) * (x - mt) * (x - mt) -
             wx * cw[from] / (cw[from] - wx) * (x - mf) * (x - mf);
    };
    for (int i = 1; i < n; ++i) {
      const int c = r->cluster[i];
      if (c == r->cluster[i - 1]) continue;
      if (cw[c] > w[i]) {
        EXPECT_GE(change(i, c, c - 1), -1e-12 * sse) << "first of " << c;
      }
      if (cw[c - 1] > w[i - 1]) {
        EXPECT_GE(change(i - 1, c - 1, c), -1e-12 * sse) << "last of " << c - 1;
      }
    }
    const Real lloyd = Lloyd1D(v, w, k, 0);
    EXPECT_LE(sse, lloyd * (1 + 1e-9));
  }
}

// Raw weight-like samples turned into the (value, count) histogram that
// palettization hands the solver: fp16-rounded normals (many duplicates),
// a handful of values repeated thousands of times, a constant tensor; k from
// 1 to beyond the number of distinct values. Each against the plain DP,
// with the same checks on centroids and assignment.
TEST(OptimalKMeans1DTest, MatchesQuadraticDpOnHistogramsOfSamples) {
  std::mt19937_64 rng(13);
  int cases = 0;
  for (int iter = 0; iter < 24; ++iter) {
    std::vector<float> raw;
    // Continuous data stays small enough for the O(k n^2) reference.
    const int count = iter % 4 < 2 ? 100 + static_cast<int>(rng() % 500) : 200 + static_cast<int>(rng() % 4000);
    std::normal_distribution<float> normal(0, iter % 2 ? 0.02f : 1.0f);
    for (int i = 0; i < count; ++i) {
      float x = 0;
      switch (iter % 4) {
        case 0: x = format::HalfToFloat(format::FloatToHalf(normal(rng))); break;       // fp16 weights
        case 1: x = format::HalfToFloat(format::FloatToHalf(normal(rng) * 0.01f)); break;  // narrow: few halves
        case 2: x = static_cast<float>(rng() % 9) * 0.25f - 1.0f; break;                 // 9 values, many times
        case 3: x = iter == 3 ? 0.5f : std::round(normal(rng) * 40.0f) / 40.0f; break;  // constant, or a grid
      }
      raw.push_back(x == 0 ? 0.0f : x);
    }
    std::map<double, double> hist;
    for (float x : raw) hist[x] += 1;
    std::vector<double> v, w;
    for (const auto& [x, c] : hist) {
      v.push_back(x);
      w.push_back(c);
    }
    const int distinct = static_cast<int>(v.size());
    ASSERT_LE(distinct, 600);
    for (int k : {1, 2, 3, 4, 8, 16, 64, distinct - 1, distinct, distinct + 5}) {
      if (k < 1) continue;
      SCOPED_TRACE(testing::Message() << "iter " << iter << " distinct " << distinct << " k " << k);
      auto r = OptimalKMeans1D(v, w, k);
      ASSERT_TRUE(r.ok()) << r.status();
      const Real sse = CheckResult(v, w, k, *r);
      ExpectSameSse(sse, QuadraticDp(v, w, k), "quadratic DP");
      if (k >= distinct) {
        EXPECT_EQ(r->centroids, v);  // every value its own centroid
      }
      ++cases;
    }
  }
  EXPECT_GT(cases, 200);
}

TEST(OptimalKMeans1DTest, RejectsInvalidInput) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    std::vector<double> v, w;
    int k;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{1, 2}, {1}, 2, "values has 2 elements but weights has 1"},
      {{1, 2}, {1, 1}, 0, "k must be >= 1, got 0"},
      {{1, 2}, {1, 1}, -3, "k must be >= 1, got -3"},
      {{1, 1}, {1, 1}, 1, "strictly increasing, but values[0] = 1 >= values[1] = 1"},
      {{2, 1}, {1, 1}, 1, "strictly increasing"},
      {{1, nan}, {1, 1}, 1, "values[1] = nan is not finite"},
      {{-inf, 1}, {1, 1}, 1, "values[0] = -inf is not finite"},
      {{1, 2}, {1, 0}, 1, "weights[1] = 0 is not positive and finite"},
      {{1, 2}, {-1, 1}, 1, "weights[0] = -1 is not positive"},
      {{1, 2}, {1, nan}, 1, "weights[1] = nan"},
      {{1, 2}, {inf, 1}, 1, "weights[0] = inf"},
  };
  for (const Case& c : cases) {
    auto r = OptimalKMeans1D(c.v, c.w, c.k);
    ASSERT_FALSE(r.ok()) << c.message;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(r.status().message()).find(c.message), std::string::npos)
        << r.status().message();
  }
}

// The bounded DP (rows that cannot be on an optimal path skipped, see
// kmeans1d.cc) against the full DP, which matches the O(k n^2) reference
// above. Adversarial inputs for the bounds: exact ties (integer grids with
// equal weights), few distinct values, k at and beyond the number of
// values, heavy duplicates, every finite fp16 value, tight clusters far
// apart, large offsets, and fp16 weight histograms. `identical`: the same
// partition, centroids and SSE to the bit (real-valued data: what
// palettization sees). Otherwise, where several partitions tie exactly or
// the optimum is only resolved to ~1e-11 (1e-6-wide clusters 1e3 apart),
// both must be optimal to the reference's tolerance but may pick different
// ones among the tied (the bounded DP decides near-ties among fewer
// candidates, with DP values that can differ in the last bit).
void ExpectSameAsEveryRow(const std::vector<double>& v, const std::vector<double>& w, int k,
                          bool identical) {
  auto every = OptimalKMeans1DWithRows(v, w, k, KMeans1DRows::kEvery);
  auto bounded = OptimalKMeans1DWithRows(v, w, k, KMeans1DRows::kBounded);
  ASSERT_TRUE(every.ok()) << every.status();
  ASSERT_TRUE(bounded.ok()) << bounded.status();
  if (identical) {
    EXPECT_EQ(bounded->cluster, every->cluster);
    EXPECT_EQ(bounded->centroids, every->centroids);
    EXPECT_EQ(bounded->sse, every->sse);
  } else {
    // Optimal to the solver's double-double resolution, ~1e-30 of the
    // one-cluster cost.
    const Real a = CheckResult(v, w, k, *bounded);
    const Real b = CheckResult(v, w, k, *every);
    const Real resolution = 1e-28L * RunCost(v, w, 0, static_cast<int>(v.size()));
    EXPECT_LE(std::fabs(a - b), 1e-9 * b + resolution)
        << "bounded " << static_cast<double>(a) << " every row " << static_cast<double>(b);
  }
  auto automatic = OptimalKMeans1D(v, w, k);
  ASSERT_TRUE(automatic.ok());
  if (identical) {
    EXPECT_EQ(automatic->cluster, every->cluster);
  }
}

TEST(OptimalKMeans1DTest, BoundedRowsMatchEveryRowAndReference) {
  std::mt19937_64 rng(21);
  for (int family = 0; family < 28; ++family) {
    const Data d = MakeData(family, 300, rng);
    const int n = static_cast<int>(d.values.size());
    for (int k : {3, 4, 8, 16, 32, 64, 150, n - 1, n, n + 3}) {
      if (k < 1) continue;
      SCOPED_TRACE(testing::Message() << "family " << family << " n " << n << " k " << k);
      // Small integers tie exactly; tight clusters far apart are resolved
      // only to ~1e-11 of their SSE.
      const bool identical = family % 7 != 1 && family % 7 != 3;
      ExpectSameAsEveryRow(d.values, d.weights, k, identical);
      auto bounded = OptimalKMeans1DWithRows(d.values, d.weights, k, KMeans1DRows::kBounded);
      ASSERT_TRUE(bounded.ok());
      const Real sse = CheckResult(d.values, d.weights, k, *bounded);
      if (k <= 64) ExpectSameSse(sse, QuadraticDp(d.values, d.weights, k), "quadratic DP");
    }
  }
}

// The clusters alone are exactly the full result's, whatever k (one run,
// every value its own run, more runs than values) and however the rows are
// chosen.
TEST(OptimalKMeans1DTest, ClustersAloneAreTheFullResults) {
  std::mt19937_64 rng(5);
  for (int family = 0; family < 28; ++family) {
    const Data d = MakeData(family, 400, rng);
    const int n = static_cast<int>(d.values.size());
    for (int k : {1, 2, 4, 8, 16, 256, n - 1, n, n + 3}) {
      if (k < 1) continue;
      SCOPED_TRACE(testing::Message() << "family " << family << " n " << n << " k " << k);
      auto full = OptimalKMeans1D(d.values, d.weights, k);
      auto clusters = OptimalKMeans1DClusters(d.values, d.weights, k);
      ASSERT_TRUE(full.ok()) << full.status();
      ASSERT_TRUE(clusters.ok()) << clusters.status();
      EXPECT_EQ(*clusters, full->cluster);
    }
  }
  // The same errors for bad input.
  EXPECT_EQ(OptimalKMeans1DClusters({1.0, 0.5}, {1.0, 1.0}, 2).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OptimalKMeans1DClusters({1.0}, {1.0, 1.0}, 1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(OptimalKMeans1DTest, BoundedRowsOnTiesAndDuplicates) {
  // Integer grid, equal weights: many partitions tie exactly.
  for (int n : {10, 33, 100, 257, 1000}) {
    std::vector<double> v(n), w(n, 1);
    std::iota(v.begin(), v.end(), 0.0);
    for (int k : {3, 5, 16, 32, 64, 100}) {
      if (k > n + 1) continue;
      SCOPED_TRACE(testing::Message() << "grid n " << n << " k " << k);
      ExpectSameAsEveryRow(v, w, k, /*identical=*/false);
      if (n <= 257) {
        auto r = OptimalKMeans1DWithRows(v, w, k, KMeans1DRows::kBounded);
        ASSERT_TRUE(r.ok());
        ExpectSameSse(CheckResult(v, w, k, *r), QuadraticDp(v, w, k), "quadratic DP");
      }
    }
  }
  // Symmetric pairs of heavy values with light ones between them, and a few
  // distinct values repeated a billion times.
  std::mt19937_64 rng(22);
  for (int iter = 0; iter < 6; ++iter) {
    const int n = 20 + static_cast<int>(rng() % 200);
    std::vector<double> v(n), w(n);
    for (int i = 0; i < n; ++i) {
      v[i] = i;
      w[i] = (i % 7 == 0 || i == n - 1 - i % 7) ? 1e9 : 1 + static_cast<double>(rng() % 3);
    }
    for (int k : {3, 4, 7, 32, n / 2, n - 1, n}) {
      if (k < 1) continue;
      SCOPED_TRACE(testing::Message() << "heavy n " << n << " k " << k);
      ExpectSameAsEveryRow(v, w, k, /*identical=*/false);
      auto r = OptimalKMeans1DWithRows(v, w, k, KMeans1DRows::kBounded);
      ASSERT_TRUE(r.ok());
      ExpectSameSse(CheckResult(v, w, k, *r), QuadraticDp(v, w, k), "quadratic DP");
    }
  }
}

// The bounds must stay tight on what palettization sees, not merely fall
// back to every row (which would still be exact, so the tests above cannot
// tell): fp16 histograms of normal samples and distinct fp32 samples, the
// penalised passes on the compact moments, under 1 % of the rows computed
// (~0.01 % measured), the result the full DP's. Weights spanning more than the
// compact moments' error bound allows take the double-double costs instead
// and must agree as well.
TEST(OptimalKMeans1DTest, BoundsStayTightOnWeightHistograms) {
  std::mt19937_64 rng(31);
  std::normal_distribution<float> normal(0, 0.02f);
  auto check = [](const std::vector<double>& v, const std::vector<double>& w, int k,
                  bool compact, double max_row_share) {
    SCOPED_TRACE(testing::Message() << "n " << v.size() << " k " << k);
    KMeans1DStats stats;
    auto bounded = OptimalKMeans1DWithRows(v, w, k, KMeans1DRows::kBounded, nullptr, &stats);
    auto every = OptimalKMeans1DWithRows(v, w, k, KMeans1DRows::kEvery);
    ASSERT_TRUE(bounded.ok() && every.ok());
    EXPECT_EQ(bounded->cluster, every->cluster);
    EXPECT_TRUE(stats.bounded);
    EXPECT_EQ(stats.compact_moments, compact);
    EXPECT_GE(stats.penalised_passes, 2);
    const double share = static_cast<double>(stats.rows) / (static_cast<double>(k) * v.size());
    EXPECT_LE(share, max_row_share) << stats.rows << " rows";
  };
  {
    std::map<double, double> merged;
    for (int i = 0; i < 65536; ++i) merged[format::HalfToFloat(format::FloatToHalf(normal(rng)))] += 1;
    std::vector<double> v, w;
    for (const auto& [x, c] : merged) {
      v.push_back(x == 0 ? 0.0 : x);
      w.push_back(c);
    }
    for (int k : {16, 64, 256}) check(v, w, k, /*compact=*/true, 0.01);
    // One value weighing 2^40: beyond the compact bound's range.
    w[w.size() / 3] = 0x1p40;
    check(v, w, 16, /*compact=*/false, 0.01);
  }
  {
    std::vector<double> v;
    for (int i = 0; i < 32768; ++i) v.push_back(normal(rng));
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    const std::vector<double> w(v.size(), 1.0);
    for (int k : {16, 256}) check(v, w, k, /*compact=*/true, 0.01);
  }
}

// Every finite fp16 value (63487 of them, 1e-8 .. 65504 in magnitude) with
// pseudo-random counts, and fp16 histograms of normal samples of the sizes
// grouped-channel (65536 weights) and per-tensor palettes see.
TEST(OptimalKMeans1DTest, BoundedRowsOnFp16Histograms) {
  std::mt19937_64 rng(23);
  std::vector<double> all, all_w;
  {
    std::map<double, double> merged;
    for (uint32_t h = 0; h < 65536; ++h) {
      const float f = format::HalfToFloat(static_cast<uint16_t>(h));
      if (std::isfinite(f)) merged[f] += 1;
    }
    for (const auto& [x, c] : merged) {
      all.push_back(x);
      all_w.push_back(static_cast<double>(1 + rng() % 100));
    }
  }
  for (int k : {4, 16, 64, 256}) {
    SCOPED_TRACE(testing::Message() << "all fp16 k " << k);
    ExpectSameAsEveryRow(all, all_w, k, /*identical=*/true);
  }
  for (int samples : {2000, 65536, 400000}) {
    std::normal_distribution<float> normal(0, 0.02f);
    std::map<double, double> merged;
    for (int i = 0; i < samples; ++i) merged[format::HalfToFloat(format::FloatToHalf(normal(rng)))] += 1;
    std::vector<double> v, w;
    for (const auto& [x, c] : merged) {
      v.push_back(x == 0 ? 0.0 : x);
      w.push_back(c);
    }
    for (int k : {3, 16, 32, 100, 256}) {
      SCOPED_TRACE(testing::Message() << "samples " << samples << " k " << k);
      ExpectSameAsEveryRow(v, w, k, /*identical=*/true);
    }
  }
}

// The DP keeps k * (n - k + 1) split points; absurd sizes are refused
// up front rather than allocated.
TEST(OptimalKMeans1DTest, RefusesHugeSplitTables) {
  std::vector<double> v(70000), w(70000, 1);
  std::iota(v.begin(), v.end(), 0.0);
  auto r = OptimalKMeans1D(v, w, 5000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
}

// ---------------------------------------------------------------------------
// Vector k-means

// Squared distance in double between a row of floats and a float centroid.
double Dist2(const float* a, const float* b, int dim) {
  double s = 0;
  for (int t = 0; t < dim; ++t) {
    const double d = static_cast<double>(a[t]) - b[t];
    s += d * d;
  }
  return s;
}

// Checks the assignment is to the nearest centroid (lowest index on ties)
// and the SSE matches; returns the recomputed SSE.
double CheckVectorResult(const std::vector<float>& data, int dim, const VectorKMeansResult& r) {
  const size_t count = data.size() / dim;
  const int k = static_cast<int>(r.centroids.size() / dim);
  EXPECT_EQ(r.centroids.size() % dim, 0u);
  EXPECT_EQ(r.assignment.size(), count);
  double sse = 0;
  for (size_t i = 0; i < count && i < r.assignment.size(); ++i) {
    int best = 0;
    for (int c = 1; c < k; ++c) {
      if (Dist2(&data[i * dim], &r.centroids[c * dim], dim) <
          Dist2(&data[i * dim], &r.centroids[best * dim], dim)) {
        best = c;
      }
    }
    EXPECT_EQ(r.assignment[i], best) << "row " << i;
    sse += Dist2(&data[i * dim], &r.centroids[r.assignment[i] * dim], dim);
  }
  EXPECT_NEAR(r.sse, sse, 1e-9 * sse + 1e-300);
  return sse;
}

// The documented Morton order, spelled out bit by bit. Per dimension each
// order key is re-encoded: its top 9 bits (sign and exponent) by their rank
// among those that occur in that dimension, then its low 23 bits with the
// trailing bits that no value varies dropped (zeros under keys with the top
// bit set, ones under the others). Then one bit string, the top bits of
// every dimension first, dimension 0 first, each dimension padded to the
// widest. Strings compare as the codes do.
std::map<std::string, std::vector<float>> RowsByMortonCode(const std::vector<float>& data, int dim) {
  const auto order_key = [](float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    if (v == 0) bits = 0;
    return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
  };
  std::vector<std::set<uint32_t>> prefixes(dim);
  std::vector<int> drop(dim, 23);
  for (size_t i = 0; i < data.size(); ++i) {
    const uint32_t key = order_key(data[i]);
    prefixes[i % dim].insert(key >> 23);
    const bool positive = (key >> 31) != 0;
    int constant = 0;  // trailing bits equal to the constant fill
    while (constant < 23 && ((key >> constant) & 1) == (positive ? 0u : 1u)) ++constant;
    drop[i % dim] = std::min(drop[i % dim], constant);
  }
  std::vector<int> width(dim);
  int bits = 1;
  for (int t = 0; t < dim; ++t) {
    int rank_bits = 0;
    while ((size_t{1} << rank_bits) < prefixes[t].size()) ++rank_bits;
    width[t] = rank_bits + 23 - drop[t];
    bits = std::max(bits, width[t]);
  }
  const auto encode = [&](float v, int t) -> uint64_t {
    const uint32_t key = order_key(v);
    const uint64_t rank = std::distance(prefixes[t].begin(), prefixes[t].find(key >> 23));
    return (rank << (23 - drop[t])) | ((key & 0x7fffff) >> drop[t]);
  };
  std::map<std::string, std::vector<float>> rows;
  for (size_t i = 0; i < data.size(); i += dim) {
    std::string code;
    for (int b = bits - 1; b >= 0; --b) {
      for (int t = 0; t < dim; ++t) code.push_back(((encode(data[i + t], t) >> b) & 1) != 0 ? '1' : '0');
    }
    rows.emplace(code, std::vector<float>(data.begin() + i, data.begin() + i + dim));
  }
  return rows;
}

// The distinct rows in Morton order with their counts, and the k-means++
// seeds drawn from them (empty when there are no more rows than k).
struct ReferenceSeeding {
  std::vector<std::vector<double>> points;
  std::vector<double> weights;
  std::vector<std::vector<double>> seeds;
};

ReferenceSeeding ReferenceSeeds(const std::vector<float>& data, int dim, int k, uint64_t seed) {
  const std::map<std::string, std::vector<float>> by_code = RowsByMortonCode(data, dim);
  std::map<std::vector<float>, double> count;
  for (size_t i = 0; i < data.size(); i += dim) {
    count[std::vector<float>(data.begin() + i, data.begin() + i + dim)] += 1;
  }
  EXPECT_EQ(by_code.size(), count.size()) << "equal codes must be equal rows";
  std::vector<std::vector<double>> p;
  std::vector<double> w;
  for (const auto& [code, row] : by_code) {
    p.emplace_back(row.begin(), row.end());
    w.push_back(count[row]);
  }
  const size_t m = p.size();
  if (m <= static_cast<size_t>(k)) return {p, w, {}};
  auto d2 = [dim](const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0;
    for (int t = 0; t < dim; ++t) s += (a[t] - b[t]) * (a[t] - b[t]);
    return s;
  };
  std::mt19937_64 rng(seed);
  auto pick = [&](const std::vector<double>& mass) {
    double total = 0;
    for (double x : mass) total += x;
    const double target = static_cast<double>(rng() >> 11) * 0x1p-53 * total;
    double run = 0;
    size_t last = 0;
    for (size_t i = 0; i < m; ++i) {
      if (mass[i] > 0) last = i;
      run += mass[i];
      if (run > target) return i;
    }
    return last;
  };
  std::vector<std::vector<double>> c;
  c.push_back(p[pick(w)]);
  std::vector<double> near(m), mass(m);
  for (size_t i = 0; i < m; ++i) near[i] = d2(p[i], c[0]);
  while (static_cast<int>(c.size()) < k) {
    for (size_t i = 0; i < m; ++i) mass[i] = w[i] * near[i];
    c.push_back(p[pick(mass)]);
    for (size_t i = 0; i < m; ++i) near[i] = std::min(near[i], d2(p[i], c.back()));
  }
  return {p, w, c};
}

// The documented procedure, written plainly: distinct rows in Morton order,
// weighted k-means++ with the documented draws, then Lloyd (an empty cluster
// keeps its centroid), float centroids, nearest reassignment.
double ReferenceVectorKMeans(const std::vector<float>& data, int dim, int k, uint64_t seed) {
  ReferenceSeeding seeding = ReferenceSeeds(data, dim, k, seed);
  if (seeding.seeds.empty()) return 0;
  const std::vector<std::vector<double>>& p = seeding.points;
  const std::vector<double>& w = seeding.weights;
  std::vector<std::vector<double>> c = seeding.seeds;
  const size_t m = p.size();
  auto d2 = [dim](const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0;
    for (int t = 0; t < dim; ++t) s += (a[t] - b[t]) * (a[t] - b[t]);
    return s;
  };
  std::vector<int> assign(m, -1);
  for (int iter = 0; iter < 1000; ++iter) {
    bool changed = false;
    for (size_t i = 0; i < m; ++i) {
      int best = 0;
      for (int j = 1; j < k; ++j) {
        if (d2(p[i], c[j]) < d2(p[i], c[best])) best = j;
      }
      changed |= assign[i] != best;
      assign[i] = best;
    }
    if (!changed) break;
    std::vector<double> sw(k, 0);
    std::vector<std::vector<double>> sx(k, std::vector<double>(dim, 0));
    for (size_t i = 0; i < m; ++i) {
      sw[assign[i]] += w[i];
      for (int t = 0; t < dim; ++t) sx[assign[i]][t] += w[i] * p[i][t];
    }
    for (int j = 0; j < k; ++j) {
      if (sw[j] == 0) continue;
      for (int t = 0; t < dim; ++t) c[j][t] = sx[j][t] / sw[j];
    }
  }
  double sse = 0;
  for (size_t i = 0; i < m; ++i) {
    double best = std::numeric_limits<double>::infinity();
    for (int j = 0; j < k; ++j) {
      std::vector<double> cf(dim);
      for (int t = 0; t < dim; ++t) cf[t] = static_cast<float>(c[j][t]);
      best = std::min(best, d2(p[i], cf));
    }
    sse += w[i] * best;
  }
  return sse;
}

std::vector<float> Blobs(int count, int dim, int centres, float spread, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0, 1);
  std::vector<std::vector<float>> mu(centres, std::vector<float>(dim));
  for (auto& m : mu) {
    for (float& x : m) x = 4 * normal(rng);
  }
  std::vector<float> data;
  for (int i = 0; i < count; ++i) {
    const auto& m = mu[rng() % centres];
    for (int t = 0; t < dim; ++t) data.push_back(m[t] + spread * normal(rng));
  }
  return data;
}

TEST(VectorKMeansTest, FewerDistinctVectorsThanKReturnsThem) {
  const std::vector<std::vector<float>> rows = {{1, 2}, {-3, 0.5f}, {1, 2.5f}};
  std::vector<float> data;
  std::vector<int> which;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 50; ++i) {
    which.push_back(static_cast<int>(rng() % rows.size()));
    data.insert(data.end(), rows[which.back()].begin(), rows[which.back()].end());
  }
  for (int k : {3, 4, 16}) {
    auto r = VectorKMeans(data, 2, k);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->centroids.size(), 6u);
    EXPECT_EQ(r->sse, 0);
    for (size_t i = 0; i < which.size(); ++i) {
      const int c = r->assignment[i];
      ASSERT_GE(c, 0);
      ASSERT_LT(c, 3);
      EXPECT_EQ(r->centroids[2 * c], rows[which[i]][0]);
      EXPECT_EQ(r->centroids[2 * c + 1], rows[which[i]][1]);
    }
  }
  // -0 and +0 are the same value.
  auto z = VectorKMeans(std::vector<float>{0.0f, -0.0f, 1.0f}, 1, 2);
  ASSERT_TRUE(z.ok());
  EXPECT_EQ(z->centroids.size(), 2u);
  EXPECT_EQ(z->assignment[0], z->assignment[1]);
  EXPECT_EQ(z->sse, 0);
  auto empty = VectorKMeans({}, 4, 8);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->centroids.empty());
  EXPECT_TRUE(empty->assignment.empty());
}

// With no more distinct rows than k the centroids are the distinct rows in
// the documented order: lexicographic by value, -0 equal to +0, each
// represented by its first occurrence's bits. Compared with
// std::stable_sort under the lexicographic comparison, bit for bit, on rows
// that share leading values, differ in sign, zero's sign, subnormals and
// magnitude, and repeat; for k up to 16 in one or two dimensions (where the
// sort keeps no record of each row's origin) and beyond.
TEST(VectorKMeansTest, DistinctRowsInLexicographicOrder) {
  std::mt19937_64 rng(11);
  const float palette[] = {-0.0f, 0.0f, -1.5f, 1.5f, 3e-41f, -3e-41f, 65504.0f, -1e30f, 2.0f, 0.25f, -0.25f};
  struct Case {
    int dim, values, k;
  };
  for (const Case& c : {Case{1, 11, 256}, Case{1, 11, 16}, Case{2, 11, 256}, Case{2, 4, 16}, Case{2, 5, 16},
                        Case{3, 11, 256}, Case{4, 4, 256}, Case{8, 3, 256}, Case{4, 11, 256}}) {
    const int dim = c.dim;
    std::vector<float> data;
    for (int i = 0; i < 200; ++i) {
      for (int t = 0; t < dim; ++t) data.push_back(palette[rng() % c.values]);
    }
    const size_t count = data.size() / dim;
    std::vector<size_t> order(count);
    std::iota(order.begin(), order.end(), size_t{0});
    const auto less = [&](size_t a, size_t b) {
      return std::lexicographical_compare(data.begin() + a * dim, data.begin() + (a + 1) * dim,
                                          data.begin() + b * dim, data.begin() + (b + 1) * dim);
    };
    std::stable_sort(order.begin(), order.end(), less);
    std::vector<float> expected;
    for (size_t r = 0; r < count; ++r) {
      if (r > 0 && !less(order[r - 1], order[r])) continue;
      expected.insert(expected.end(), data.begin() + order[r] * dim, data.begin() + (order[r] + 1) * dim);
    }
    SCOPED_TRACE(testing::Message() << "dim " << dim << ", k " << c.k << ", " << expected.size() / dim
                                    << " distinct rows");
    ASSERT_LE(expected.size() / dim, static_cast<size_t>(c.k));
    auto r = VectorKMeans(data, dim, c.k);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->centroids.size(), expected.size());
    EXPECT_EQ(std::memcmp(r->centroids.data(), expected.data(), expected.size() * sizeof(float)), 0);
    for (size_t i = 0; i < count; ++i) {
      const float* c = &r->centroids[static_cast<size_t>(r->assignment[i]) * dim];
      for (int t = 0; t < dim; ++t) EXPECT_EQ(c[t], data[i * dim + t]) << "row " << i;
    }
  }
}

TEST(VectorKMeansTest, DeterministicAndIndependentOfRowOrder) {
  for (int dim : {2, 3}) {  // each row's own search for its cluster, and the sort's record
  SCOPED_TRACE(testing::Message() << "dim " << dim);
  std::mt19937_64 rng(8);
  std::vector<float> data = Blobs(2000, dim, 12, 0.7f, rng);
  VectorKMeansOptions options;
  options.seed = 42;
  auto a = VectorKMeans(data, dim, 8, options);
  auto b = VectorKMeans(data, dim, 8, options);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->centroids, b->centroids);
  EXPECT_EQ(a->assignment, b->assignment);
  EXPECT_EQ(a->sse, b->sse);
  EXPECT_EQ(a->iterations, b->iterations);
  CheckVectorResult(data, dim, *a);

  // Reversing the rows changes nothing but the order of the assignment.
  std::vector<float> reversed;
  for (size_t i = data.size(); i > 0; i -= dim) {
    reversed.insert(reversed.end(), data.begin() + (i - dim), data.begin() + i);
  }
  auto c = VectorKMeans(reversed, dim, 8, options);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(a->centroids, c->centroids);
  const size_t count = data.size() / dim;
  for (size_t i = 0; i < count; ++i) EXPECT_EQ(a->assignment[i], c->assignment[count - 1 - i]);
  }
}

TEST(VectorKMeansTest, NoWorseThanReferenceLloydFromTheSameSeeding) {
  std::mt19937_64 rng(9);
  struct Set {
    std::vector<float> data;
    int dim;
  };
  std::vector<Set> sets;
  sets.push_back({Blobs(1500, 2, 6, 0.5f, rng), 2});
  sets.push_back({Blobs(1200, 4, 20, 1.5f, rng), 4});
  sets.push_back({Blobs(800, 8, 3, 0.1f, rng), 8});
  {
    // Heavy duplicates: few distinct rows, very unequal multiplicities.
    std::vector<float> base = Blobs(40, 2, 5, 1.0f, rng);
    std::vector<float> data;
    for (int i = 0; i < 3000; ++i) {
      const size_t r = (rng() % 7 == 0) ? rng() % 40 : rng() % 4;
      data.insert(data.end(), base.begin() + 2 * r, base.begin() + 2 * r + 2);
    }
    sets.push_back({data, 2});
  }
  // Many dimensions: the tree's boxes straddle most bisectors, and the
  // passes switch to per-point bounds.
  sets.push_back({Blobs(1000, 16, 4, 3.0f, rng), 16});
  for (const Set& s : sets) {
    for (int k : {2, 5, 16}) {
      for (uint64_t seed : {0, 1, 12345}) {
        SCOPED_TRACE(testing::Message() << "dim " << s.dim << " k " << k << " seed " << seed);
        VectorKMeansOptions options;
        options.seed = seed;
        options.tolerance = 0;
        options.max_iterations = 1000;
        auto r = VectorKMeans(s.data, s.dim, k, options);
        ASSERT_TRUE(r.ok()) << r.status();
        const double sse = CheckVectorResult(s.data, s.dim, *r);
        EXPECT_EQ(r->centroids.size(), static_cast<size_t>(k * s.dim));
        const double ref = ReferenceVectorKMeans(s.data, s.dim, k, seed);
        EXPECT_LE(sse, ref * (1 + 1e-6) + 1e-9);
      }
    }
  }
}

// With no iterations the centroids are the seeds, which depend on the
// documented order of the distinct rows: every draw must land on the row the
// plain reference draws. Rows with both signs, zeros of both signs, fp16
// values, wide ranges and heavy duplicates, in 1 to 8 dimensions.
TEST(VectorKMeansTest, SeedsFollowTheDocumentedOrder) {
  std::mt19937_64 rng(21);
  std::normal_distribution<float> normal(0, 1);
  struct Set {
    std::vector<float> data;
    int dim;
  };
  std::vector<Set> sets;
  for (int dim : {1, 2, 3, 8}) {
    std::vector<float> data;
    for (int i = 0; i < 600 * dim; ++i) {
      const float x = 0.02f * normal(rng);
      switch (rng() % 6) {
        case 0:
          data.push_back(format::HalfToFloat(format::FloatToHalf(x)));
          break;
        case 1:
          data.push_back(rng() % 2 == 0 ? 0.0f : -0.0f);
          break;
        case 2:
          data.push_back(x * 1e6f);
          break;
        default:
          data.push_back(x);
      }
    }
    sets.push_back({data, dim});
  }
  {
    std::vector<float> data;  // fp16 values only, many repeated rows
    for (int i = 0; i < 3000; ++i) {
      const float x = static_cast<float>(static_cast<int>(rng() % 9) - 4) * 0.25f;
      data.push_back(format::HalfToFloat(format::FloatToHalf(x)));
      data.push_back(format::HalfToFloat(format::FloatToHalf(0.02f * normal(rng))));
    }
    sets.push_back({data, 2});
  }
  // fp16 values only as 4-D and 8-D rows: their codes are built and decoded
  // by the 64-bit ladders (InterleaveWide). Normal values take more than 8
  // bits a coordinate (8-D codes then reach the upper 64 bits); a few
  // halves (zeros of both signs, a subnormal, the largest) fewer.
  for (int dim : {4, 8}) {
    for (bool few : {false, true}) {
      const float few_values[] = {0.0f, -0.0f, 0.5f, -0.75f, format::HalfToFloat(1), 65504.0f, -2.0f};
      std::vector<float> data;
      for (int i = 0; i < 700 * dim; ++i) {
        const float x = few ? few_values[rng() % 7] : 0.02f * normal(rng);
        data.push_back(format::HalfToFloat(format::FloatToHalf(x)));
      }
      sets.push_back({data, dim});
    }
  }
  for (const Set& s : sets) {
    for (int k : {2, 7, 32}) {
      for (uint64_t seed : {0, 3}) {
        SCOPED_TRACE(testing::Message() << "dim " << s.dim << " k " << k << " seed " << seed);
        VectorKMeansOptions options;
        options.seed = seed;
        options.max_iterations = 0;
        auto r = VectorKMeans(s.data, s.dim, k, options);
        ASSERT_TRUE(r.ok()) << r.status();
        const ReferenceSeeding expected = ReferenceSeeds(s.data, s.dim, k, seed);
        ASSERT_EQ(expected.seeds.size(), static_cast<size_t>(k));
        ASSERT_EQ(r->centroids.size(), static_cast<size_t>(k * s.dim));
        for (int j = 0; j < k; ++j) {
          for (int t = 0; t < s.dim; ++t) {
            EXPECT_EQ(r->centroids[j * s.dim + t], static_cast<float>(expected.seeds[j][t])) << "seed " << j;
          }
        }
        CheckVectorResult(s.data, s.dim, *r);
      }
    }
  }
}

TEST(VectorKMeansTest, OneDimensionalAgreesWithOptimal) {
  std::mt19937_64 rng(10);
  std::normal_distribution<float> normal(0, 1);
  // Well separated clusters: k-means++ and Lloyd find the optimum.
  std::vector<float> separated;
  for (int i = 0; i < 3000; ++i) separated.push_back(10.0f * (i % 5) + 0.3f * normal(rng));
  std::vector<float> gaussian;
  for (int i = 0; i < 3000; ++i) gaussian.push_back(normal(rng));
  for (const auto* data : {&separated, &gaussian}) {
    std::map<double, double> hist;
    for (float x : *data) hist[x] += 1;
    std::vector<double> v, w;
    for (const auto& [x, c] : hist) {
      v.push_back(x);
      w.push_back(c);
    }
    for (int k : {2, 5, 8}) {
      SCOPED_TRACE(testing::Message() << (data == &separated ? "separated" : "gaussian") << " k " << k);
      auto opt = OptimalKMeans1D(v, w, k);
      auto vec = VectorKMeans(*data, 1, k);
      ASSERT_TRUE(opt.ok() && vec.ok());
      const double sse = CheckVectorResult(*data, 1, *vec);
      EXPECT_LE(opt->sse, sse * (1 + 1e-9));
      if (data == &separated && k == 5) {
        EXPECT_NEAR(sse, opt->sse, 1e-6 * opt->sse);
      }
      // Lloyd's local optima are close on such data.
      EXPECT_LE(sse, 1.5 * opt->sse);
    }
  }
}

// Equidistant points go to the lowest-index centroid (checked by
// CheckVectorResult), including straight after seeding.
TEST(VectorKMeansTest, TiesGoToTheLowestIndex) {
  std::vector<float> data;
  for (int i = 0; i < 30; ++i) data.push_back(static_cast<float>(2 * (i % 3)));  // 0, 2, 4
  for (uint64_t seed = 0; seed < 20; ++seed) {
    for (int iterations : {0, 300}) {
      VectorKMeansOptions options;
      options.seed = seed;
      options.max_iterations = iterations;
      auto r = VectorKMeans(data, 1, 2, options);
      ASSERT_TRUE(r.ok());
      CheckVectorResult(data, 1, *r);
    }
  }
}

// Far from the origin, rounding centroids to float moves them noticeably;
// the assignment and SSE must be those of the returned float centroids.
TEST(VectorKMeansTest, FloatCentroidsAreSelfConsistent) {
  std::mt19937_64 rng(12);
  std::normal_distribution<float> normal(0, 1);
  std::vector<float> data;
  for (int i = 0; i < 4000; ++i) {
    data.push_back(3e4f + 0.01f * normal(rng));
    data.push_back(-7e3f + 0.002f * normal(rng));
  }
  for (int k : {3, 17}) {
    auto r = VectorKMeans(data, 2, k);
    ASSERT_TRUE(r.ok());
    CheckVectorResult(data, 2, *r);
  }
}

// A dataset (found by search) on which Lloyd empties a cluster from this
// seeding: the cluster is re-seeded, so all k centroids end up used and the
// result beats the reference that leaves the empty centroid stranded.
TEST(VectorKMeansTest, EmptyClusterIsReseeded) {
  const std::vector<float> data = {5, 3, 5, 3, 1, 6, 1, 6, 1, 6, 6, 3, 6, 3, 6, 3,
                                   6, 3, 6, 3, 1, 4, 1, 4, 9, 6};
  const int dim = 2, k = 3;
  VectorKMeansOptions options;
  options.seed = 0;
  auto r = VectorKMeans(data, dim, k, options);
  ASSERT_TRUE(r.ok());
  const double sse = CheckVectorResult(data, dim, *r);
  std::vector<int> used(k, 0);
  for (int32_t a : r->assignment) ++used[a];
  for (int c = 0; c < k; ++c) EXPECT_GT(used[c], 0) << "centroid " << c;
  EXPECT_LT(sse, ReferenceVectorKMeans(data, dim, k, 0) * (1 - 1e-6));
  // Brute force over all assignments of the 13 rows' 5 distinct points.
  std::map<std::vector<float>, double> distinct;
  for (size_t i = 0; i < data.size(); i += dim) distinct[{data[i], data[i + 1]}] += 1;
  std::vector<std::vector<float>> p;
  std::vector<double> w;
  for (const auto& [row, count] : distinct) {
    p.push_back(row);
    w.push_back(count);
  }
  double best = std::numeric_limits<double>::infinity();
  for (int code = 0; code < 243; ++code) {
    std::vector<double> sw(k, 0), sx(k, 0), sy(k, 0), sq(k, 0);
    for (int i = 0, c = code; i < 5; ++i, c /= 3) {
      sw[c % 3] += w[i];
      sx[c % 3] += w[i] * p[i][0];
      sy[c % 3] += w[i] * p[i][1];
      sq[c % 3] += w[i] * (p[i][0] * p[i][0] + p[i][1] * p[i][1]);
    }
    double total = 0;
    for (int c = 0; c < k; ++c) {
      if (sw[c] > 0) total += sq[c] - (sx[c] * sx[c] + sy[c] * sy[c]) / sw[c];
    }
    best = std::min(best, total);
  }
  EXPECT_GE(sse, best * (1 - 1e-9));
  EXPECT_LE(sse, best * 1.5);
}

TEST(VectorKMeansTest, IterationLimitAndTolerance) {
  std::mt19937_64 rng(11);
  const std::vector<float> data = Blobs(3000, 2, 30, 2.0f, rng);
  VectorKMeansOptions none;
  none.max_iterations = 0;
  auto seeded = VectorKMeans(data, 2, 10, none);
  ASSERT_TRUE(seeded.ok());
  EXPECT_EQ(seeded->iterations, 0);
  CheckVectorResult(data, 2, *seeded);
  auto full = VectorKMeans(data, 2, 10);
  ASSERT_TRUE(full.ok());
  EXPECT_GT(full->iterations, 0);
  EXPECT_LE(full->iterations, 300);
  EXPECT_LE(full->sse, seeded->sse);
}

// scikit-learn's rule, as coremltools uses it for vector palettes: stop at
// the first update that moves the centroids, in total squared distance, by
// at most shift_tolerance times the rows' mean per-dimension variance. The
// centroids after each update come from runs capped at that many
// iterations (the same path, cut short).
TEST(VectorKMeansTest, StopsWhenTheCentroidsSettle) {
  std::mt19937_64 rng(13);
  const int dim = 3, k = 8;
  const std::vector<float> data = Blobs(3000, dim, 12, 1.5f, rng);
  const size_t rows = data.size() / dim;
  double variance = 0;
  for (int t = 0; t < dim; ++t) {
    double mean = 0, sq = 0;
    for (size_t r = 0; r < rows; ++r) mean += data[r * dim + t];
    mean /= rows;
    for (size_t r = 0; r < rows; ++r) sq += (data[r * dim + t] - mean) * (data[r * dim + t] - mean);
    variance += sq / rows;
  }
  variance /= dim;
  const double tolerance = 1e-2;
  const double limit = tolerance * variance;
  const auto centroids_after = [&](int iterations) {
    VectorKMeansOptions options;
    options.tolerance = 0;
    options.max_iterations = iterations;
    auto r = VectorKMeans(data, dim, k, options);
    EXPECT_TRUE(r.ok());
    return r.ok() ? r->centroids : std::vector<float>();
  };
  VectorKMeansOptions options;
  options.tolerance = 0;
  options.shift_tolerance = tolerance;
  auto settled = VectorKMeans(data, dim, k, options);
  ASSERT_TRUE(settled.ok()) << settled.status();
  const int stop = settled->iterations;
  ASSERT_GT(stop, 1);
  CheckVectorResult(data, dim, *settled);
  std::vector<float> previous = centroids_after(0);
  for (int m = 1; m <= stop; ++m) {
    const std::vector<float> current = centroids_after(m);
    double shift = 0;
    for (size_t i = 0; i < current.size(); ++i) shift += (current[i] - previous[i]) * (current[i] - previous[i]);
    if (m < stop) {
      EXPECT_GT(shift, limit * (1 - 1e-4)) << "update " << m << " had settled already";
    } else {
      EXPECT_LE(shift, limit * (1 + 1e-4)) << "update " << m << " had not settled";
      EXPECT_EQ(current, settled->centroids);
    }
    previous = current;
  }
  // Without the rule the same run goes on, to a lower SSE.
  auto full = VectorKMeans(data, dim, k, VectorKMeansOptions{});
  ASSERT_TRUE(full.ok());
  EXPECT_GT(full->iterations, stop);
  EXPECT_LE(full->sse, settled->sse);
  // Settling in many dimensions, where the passes run on per-point bounds:
  // the last update's move must still loosen them before the final
  // assignment, or points keep a centroid that is no longer nearest.
  for (uint64_t seed : {1, 2, 3}) {
    const std::vector<float> wide = Blobs(2000, 16, 6, 4.0f, rng);
    VectorKMeansOptions wide_options;
    wide_options.shift_tolerance = tolerance;
    wide_options.seed = seed;
    auto r = VectorKMeans(wide, 16, 16, wide_options);
    ASSERT_TRUE(r.ok()) << r.status();
    CheckVectorResult(wide, 16, *r);
  }
}

TEST(VectorKMeansTest, RejectsInvalidInput) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> ok = {1, 2, 3, 4};
  auto expect_invalid = [](const absl::StatusOr<VectorKMeansResult>& r, const std::string& m) {
    ASSERT_FALSE(r.ok()) << m;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(r.status().message()).find(m), std::string::npos) << r.status().message();
  };
  expect_invalid(VectorKMeans(ok, 0, 2), "dim must be >= 1, got 0");
  expect_invalid(VectorKMeans(ok, 3, 2), "data has 4 values, not a multiple of dim = 3");
  expect_invalid(VectorKMeans(ok, 2, 0), "k must be >= 1, got 0");
  expect_invalid(VectorKMeans(std::vector<float>{1, nan, 3, 4}, 2, 2), "data[1] (row 0) = nan is not finite");
  expect_invalid(VectorKMeans(std::vector<float>{1, 2, 3, -inf}, 2, 2), "data[3] (row 1) = -inf");
  VectorKMeansOptions bad_iter;
  bad_iter.max_iterations = -1;
  expect_invalid(VectorKMeans(ok, 2, 2, bad_iter), "max_iterations must be >= 0");
  VectorKMeansOptions bad_tol;
  bad_tol.tolerance = -1;
  expect_invalid(VectorKMeans(ok, 2, 2, bad_tol), "tolerance must be finite and >= 0");
  bad_tol.tolerance = std::nan("");
  expect_invalid(VectorKMeans(ok, 2, 2, bad_tol), "tolerance must be finite and >= 0");
  VectorKMeansOptions bad_shift;
  bad_shift.shift_tolerance = -1;
  expect_invalid(VectorKMeans(ok, 2, 2, bad_shift), "shift_tolerance must be finite and >= 0, got -1");
  bad_shift.shift_tolerance = std::numeric_limits<double>::infinity();
  expect_invalid(VectorKMeans(ok, 2, 2, bad_shift), "shift_tolerance must be finite and >= 0, got inf");
}

}  // namespace
}  // namespace coremlz::compress
