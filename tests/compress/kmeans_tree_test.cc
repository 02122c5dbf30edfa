// The two assignment passes of vector k-means, KMeansTree and KMeansBounds,
// against a full search on the same centroids: the assignments (lowest
// index on ties), the count of changes, the SSE and the cluster means. The
// tree's correctness may not depend on its codes (they only shape the
// cells), so every case also runs with codes that make poor cells: all
// equal (every split by count) and random.
#include "compress/kmeans_tree.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "compress/kmeans_bounds.h"
#include "gtest/gtest.h"

namespace coremlz::compress {
namespace {

double Dist2(const float* x, const double* c, int dim) {
  double s = 0;
  for (int t = 0; t < dim; ++t) s += (static_cast<double>(x[t]) - c[t]) * (static_cast<double>(x[t]) - c[t]);
  return s;
}

struct Case {
  std::string name;
  WeightedPoints points;
  std::vector<uint32_t> codes;  // code_words per point, ascending
  int code_words = 1;
};

enum class Codes { kGrid, kGridTwoWords, kEqual, kRandom };

// An 8-bit grid cell per dimension, the first two dimensions' interleaved
// (one dimension: its cell), points sorted by it; the same split over two
// code words (so a split may fall in either); or codes that carry no
// geometry at all.
Case MakeCase(std::string name, int dim, std::vector<float> x, std::vector<double> weight, Codes codes,
              std::mt19937_64& rng) {
  const size_t n = weight.size();
  std::vector<uint32_t> code(n, 0);
  if (codes == Codes::kGrid || codes == Codes::kGridTwoWords) {
    std::vector<float> lo(dim, std::numeric_limits<float>::infinity()), hi(dim, -lo[0]);
    for (size_t i = 0; i < n; ++i) {
      for (int t = 0; t < dim; ++t) {
        lo[t] = std::min(lo[t], x[i * dim + t]);
        hi[t] = std::max(hi[t], x[i * dim + t]);
      }
    }
    const auto cell = [&](size_t i, int t) -> uint32_t {
      if (hi[t] <= lo[t]) return 0;
      return std::min<uint32_t>(255, static_cast<uint32_t>((x[i * dim + t] - lo[t]) / (hi[t] - lo[t]) * 256));
    };
    for (size_t i = 0; i < n; ++i) {
      for (int b = 7; b >= 0; --b) {
        for (int t = 0; t < std::min(dim, 2); ++t) code[i] = (code[i] << 1) | ((cell(i, t) >> b) & 1);
      }
    }
  } else if (codes == Codes::kRandom) {
    for (uint32_t& c : code) c = static_cast<uint32_t>(rng() % 64);
  }
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return code[a] < code[b]; });
  Case c;
  c.name = std::move(name);
  c.points.dim = dim;
  c.code_words = codes == Codes::kGridTwoWords ? 2 : 1;
  for (size_t i : order) {
    c.points.x.insert(c.points.x.end(), x.begin() + i * dim, x.begin() + (i + 1) * dim);
    c.points.weight.push_back(weight[i]);
    if (c.code_words == 2) {
      c.codes.push_back(code[i] >> 7);  // the top bits, then the low 7
      c.codes.push_back(code[i] & 0x7f);
    } else {
      c.codes.push_back(code[i]);
    }
  }
  return c;
}

std::vector<Case> Cases(Codes codes) {
  std::mt19937_64 rng(31);
  std::normal_distribution<float> normal(0, 1);
  std::vector<Case> cases;
  for (int dim : {1, 2, 3, 4, 8}) {
    // Blobs with unequal multiplicities.
    std::vector<float> x;
    std::vector<double> w;
    for (int i = 0; i < 3000; ++i) {
      const float centre = static_cast<float>(i % 7) * 3;
      for (int t = 0; t < dim; ++t) x.push_back(centre + normal(rng));
      w.push_back(1 + static_cast<double>(rng() % 5));
    }
    cases.push_back(MakeCase("blobs dim " + std::to_string(dim), dim, x, w, codes, rng));
  }
  {
    // An integer lattice: centroids at lattice points and half-way between
    // them put many points exactly on bisectors (ties).
    std::vector<float> x;
    for (int a = -20; a <= 20; ++a) {
      for (int b = -20; b <= 20; ++b) {
        x.push_back(static_cast<float>(a));
        x.push_back(static_cast<float>(b));
      }
    }
    cases.push_back(MakeCase("lattice", 2, x, std::vector<double>(x.size() / 2, 1), codes, rng));
  }
  {
    // fp16-like weights far from the origin: rounding must not decide.
    std::vector<float> x;
    for (int i = 0; i < 4000; ++i) {
      x.push_back(3e4f + 0.01f * normal(rng));
      x.push_back(-7e3f + 0.002f * normal(rng));
    }
    cases.push_back(MakeCase("far from the origin", 2, x, std::vector<double>(x.size() / 2, 1), codes, rng));
  }
  return cases;
}

// Centroids that move: random points of the data, then steps towards
// their clusters' means with jitter, so nodes change hands between passes.
void CheckPasses(const Case& c, int k, uint64_t seed) {
  SCOPED_TRACE(testing::Message() << c.name << ", k " << k << ", seed " << seed);
  const int dim = c.points.dim;
  const size_t n = c.points.size();
  auto built = KMeansTree::Build(c.points, c.codes, c.code_words, nullptr);
  ASSERT_TRUE(built.ok()) << built.status();
  KMeansTree& tree = *built;
  ASSERT_EQ(tree.points().x, c.points.x);
  std::mt19937_64 rng(seed);
  std::vector<double> centroids(static_cast<size_t>(k) * dim);
  for (int j = 0; j < k; ++j) {
    const size_t i = rng() % n;
    for (int t = 0; t < dim; ++t) centroids[j * dim + t] = c.points.row(i)[t];
  }
  if (c.name == "lattice") {
    for (int j = 0; j < k; ++j) {  // lattice and half-lattice points
      for (int t = 0; t < dim; ++t) centroids[j * dim + t] = 0.5 * static_cast<double>(static_cast<int>(rng() % 41) - 20);
    }
  }
  KMeansBounds bounds(c.points, k, nullptr);
  std::vector<double> before;
  std::vector<int32_t> assignment(n, -1), bounded(n, -1), expected(n, -1);
  for (int pass = 0; pass < 6; ++pass) {
    SCOPED_TRACE(testing::Message() << "pass " << pass);
    // The full search.
    size_t expected_changes = 0;
    double expected_sse = 0;
    std::vector<double> sum_w(k, 0), sum_x(static_cast<size_t>(k) * dim, 0);
    for (size_t i = 0; i < n; ++i) {
      int best = 0;
      for (int j = 1; j < k; ++j) {
        if (Dist2(c.points.row(i), &centroids[j * dim], dim) < Dist2(c.points.row(i), &centroids[best * dim], dim)) {
          best = j;
        }
      }
      expected_changes += expected[i] != best;
      expected[i] = best;
      expected_sse += c.points.weight[i] * Dist2(c.points.row(i), &centroids[best * dim], dim);
      sum_w[best] += c.points.weight[i];
      for (int t = 0; t < dim; ++t) sum_x[best * dim + t] += c.points.weight[i] * c.points.row(i)[t];
    }
    size_t changed = 0;
    ClusterSums sums;
    const double sse = tree.Assign(centroids, k, &assignment, &changed, &sums);
    ASSERT_EQ(assignment, expected);
    EXPECT_EQ(changed, expected_changes);
    EXPECT_NEAR(sse, expected_sse, 1e-9 * expected_sse);
    size_t bounded_changes = 0;
    ClusterSums bounded_sums;
    const double bounded_sse = bounds.Assign(before, centroids, &bounded, &bounded_changes, &bounded_sums);
    before = centroids;
    ASSERT_EQ(bounded, expected) << "KMeansBounds";
    EXPECT_EQ(bounded_changes, expected_changes) << "KMeansBounds";
    EXPECT_NEAR(bounded_sse, expected_sse, 1e-9 * expected_sse) << "KMeansBounds";
    std::vector<double> bounded_means = centroids;
    const std::vector<int64_t> bounded_members = bounded_sums.Finish(&bounded_means);
    std::vector<double> means = centroids;
    const std::vector<int64_t>& members = sums.Finish(&means);
    for (int j = 0; j < k; ++j) {
      EXPECT_EQ(members[j], std::count(expected.begin(), expected.end(), j)) << "cluster " << j;
      EXPECT_EQ(bounded_members[j], members[j]) << "KMeansBounds, cluster " << j;
      if (sum_w[j] == 0) continue;
      for (int t = 0; t < dim; ++t) {
        const double mean = sum_x[j * dim + t] / sum_w[j];
        EXPECT_NEAR(means[j * dim + t], mean, 1e-9 * (std::fabs(mean) + 1)) << "cluster " << j;
        EXPECT_NEAR(bounded_means[j * dim + t], mean, 1e-9 * (std::fabs(mean) + 1)) << "KMeansBounds, cluster " << j;
      }
    }
    // Next centroids: halfway to the means, jittered; now and then a point
    // moved by hand, as re-seeding an empty cluster does.
    for (size_t i = 0; i < centroids.size(); ++i) {
      centroids[i] = 0.5 * (centroids[i] + means[i]) + 0.05 * (static_cast<double>(rng() % 1000) / 1000 - 0.5);
    }
    if (pass == 3) {
      const size_t i = rng() % n;
      assignment[i] = (assignment[i] + 1) % k;
      expected[i] = assignment[i];
      bounded[i] = assignment[i];
      tree.ForgetOwners();
      bounds.Invalidate(i);
    }
  }
}

TEST(KMeansTreeTest, BothPassesAssignAsAFullSearch) {
  for (Codes codes : {Codes::kGrid, Codes::kGridTwoWords, Codes::kEqual, Codes::kRandom}) {
    SCOPED_TRACE(testing::Message() << "codes " << static_cast<int>(codes));
    for (const Case& c : Cases(codes)) {
      for (int k : {1, 2, 5, 16, 64}) {
        for (uint64_t seed : {1, 2}) CheckPasses(c, k, seed);
      }
    }
  }
}

// Once the centroids sit in well separated blobs, a pass searches only a
// small part of the points one by one: the filtering is what makes vector
// k-means fast, and a tree that never prunes would still assign correctly.
TEST(KMeansTreeTest, SettledClustersSkipMostPoints) {
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal(0, 1);
  std::vector<float> x;
  const int k = 4;
  for (int i = 0; i < 20000; ++i) {
    x.push_back(static_cast<float>(10 * (i % k)) + normal(rng));
    x.push_back(normal(rng));
  }
  const Case c = MakeCase("separated", 2, x, std::vector<double>(x.size() / 2, 1), Codes::kGrid, rng);
  auto tree = KMeansTree::Build(c.points, c.codes, 1, nullptr);
  ASSERT_TRUE(tree.ok());
  const std::vector<double> centroids = {0, 0, 10, 0, 20, 0, 30, 0};
  std::vector<int32_t> assignment(c.points.size(), -1);
  size_t changed = 0;
  tree->Assign(centroids, k, &assignment, &changed, nullptr);
  EXPECT_EQ(changed, c.points.size());
  EXPECT_LT(tree->last_points_searched(), c.points.size() / 5);
  EXPECT_GT(tree->node_count(), 1u);
  tree->Assign(centroids, k, &assignment, &changed, nullptr);
  EXPECT_EQ(changed, 0u);
}

TEST(KMeansTreeTest, RejectsPointsAndCodesThatDoNotFit) {
  WeightedPoints points;
  points.dim = 2;
  points.x = {1, 2, 3, 4};
  points.weight = {1, 1};
  const auto expect_invalid = [](const absl::StatusOr<KMeansTree>& r, const std::string& message) {
    ASSERT_FALSE(r.ok()) << message;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(std::string(r.status().message()).find(message), std::string::npos) << r.status();
  };
  expect_invalid(KMeansTree::Build(points, {0, 1, 2}, 1, nullptr), "3 code words for 2 points");
  WeightedPoints short_x = points;
  short_x.x.pop_back();
  expect_invalid(KMeansTree::Build(short_x, {0, 1}, 1, nullptr), "3 coordinates for 2 points of dimension 2");
  WeightedPoints zero_weight = points;
  zero_weight.weight[1] = 0;
  expect_invalid(KMeansTree::Build(zero_weight, {0, 1}, 1, nullptr), "weight 0");
  EXPECT_TRUE(KMeansTree::Build(points, {0, 1}, 1, nullptr).ok());
}

// A pass stopped part way says so: the hook answers "go on" a few times,
// then "stop", and each pass sees it well before the end of its points.
TEST(KMeansTreeTest, PassesStopWhenCancelled) {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal(0, 1);
  std::vector<float> x;
  for (int i = 0; i < 2000000; ++i) x.push_back(normal(rng));
  const Case c = MakeCase("cancel mid-pass", 2, x, std::vector<double>(x.size() / 2, 1), Codes::kGrid, rng);
  int polls = 0;
  CancelCheck stop([&polls] { return ++polls > 2; });
  auto tree = KMeansTree::Build(c.points, c.codes, 1, nullptr);
  ASSERT_TRUE(tree.ok());
  // 64 centroids spread over the data: every pass has work for many polls.
  std::vector<double> centroids;
  for (int j = 0; j < 64; ++j) {
    centroids.push_back(c.points.row(j * 15013)[0]);
    centroids.push_back(c.points.row(j * 15013)[1]);
  }
  KMeansBounds bounds(tree->points(), 64, &stop);
  std::vector<int32_t> assignment(c.points.size(), -1);
  size_t changed = 0;
  bounds.Assign(centroids, centroids, &assignment, &changed, nullptr);
  EXPECT_TRUE(bounds.cancelled());
  EXPECT_GT(std::count(assignment.begin(), assignment.end(), -1), 0) << "the pass ran to its end";
  // The tree's pass does much less work (that is its point): the first
  // poll of the pass stops it.
  bool armed = false;
  CancelCheck stop_tree([&armed] { return armed; });
  auto cancellable = KMeansTree::Build(c.points, c.codes, 1, &stop_tree);
  ASSERT_TRUE(cancellable.ok()) << cancellable.status();
  armed = true;
  std::fill(assignment.begin(), assignment.end(), -1);
  cancellable->Assign(centroids, 64, &assignment, &changed, nullptr);
  EXPECT_TRUE(cancellable->cancelled());
  EXPECT_GT(std::count(assignment.begin(), assignment.end(), -1), 0) << "the pass ran to its end";
}

TEST(KMeansTreeTest, Cancels) {
  std::mt19937_64 rng(6);
  std::normal_distribution<float> normal(0, 1);
  std::vector<float> x;
  for (int i = 0; i < 5000; ++i) x.push_back(normal(rng));
  const Case c = MakeCase("cancel", 1, x, std::vector<double>(x.size(), 1), Codes::kGrid, rng);
  CancelCheck stop([] { return true; });
  stop.Poll();
  auto tree = KMeansTree::Build(c.points, c.codes, 1, &stop);
  ASSERT_FALSE(tree.ok());
  EXPECT_EQ(tree.status().code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace coremlz::compress
