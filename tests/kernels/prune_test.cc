// Pruning kernels against slow references: numpy.percentile (linear
// interpolation, numpy 1.x formulas) on a fully sorted copy, block norms
// summed element by element from coordinates, and n:m groups resolved by
// repeated minimum search.
#include "compress/prune.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tests/kernels/kernel_test_util.h"

namespace coremlz::compress {
namespace {

using kernel_test::Dist;
using kernel_test::NumElements;
using kernel_test::Prec;
using kernel_test::Ravel;
using kernel_test::Shape;
using kernel_test::ShapeStr;
using kernel_test::Unravel;

Precision ToPrecision(Prec p) { return p == Prec::k16 ? Precision::kFloat16 : Precision::kFloat32; }

// numpy 1.x percentile(values, ts * 100), method "linear":
//   q = (ts * 100) / 100; virtual index = n*q + (1 - q) - 1 (alpha = beta = 1);
//   indices clamped to [0, n-1]; lerp(a, b, g) = a + (b-a)*g, or
//   b - (b-a)*(1-g) when g >= 0.5; all in float64.
double RefPercentile(std::vector<float> values, double ts) {
  std::sort(values.begin(), values.end());
  const double n = static_cast<double>(values.size());
  const double q = (ts * 100.0) / 100.0;
  const double vi = n * q + (1.0 - q) - 1.0;
  if (vi >= n - 1) return values.back();
  if (vi < 0) return values.front();
  const double lo = std::floor(vi);
  const double g = vi - lo;
  const double a = values[static_cast<size_t>(lo)], b = values[static_cast<size_t>(lo) + 1];
  return g >= 0.5 ? b - (b - a) * (1 - g) : a + (b - a) * g;
}

// Zeroes w where map <= percentile(map) (cast to the weight dtype).
std::vector<float> RefPruneByMap(std::vector<float> w, const std::vector<float>& map, double ts, Prec p) {
  if (ts * 100 == 100) {
    for (auto& v : w) v = 0.0f;
    return w;
  }
  if (ts * 100 == 0) return w;
  const float cut = kernel_test::CastDouble(p, RefPercentile(map, ts));
  for (size_t i = 0; i < w.size(); ++i)
    if (map[i] <= cut) w[i] = 0.0f;
  return w;
}

std::vector<float> Magnitudes(const std::vector<float>& w) {
  std::vector<float> m(w.size());
  for (size_t i = 0; i < w.size(); ++i) m[i] = std::fabs(w[i]);
  return m;
}

// Per-element L2 norm of its block of `bs` consecutive channels along dim
// (the padding beyond the axis contributes nothing).
std::vector<float> RefBlockMap(const std::vector<float>& w, const Shape& shape, int bs, int dim, Prec p) {
  std::vector<float> map(w.size());
  const int64_t channels = shape[dim];
  for (int64_t e = 0; e < static_cast<int64_t>(w.size()); ++e) {
    auto c = Unravel(e, shape);
    const int64_t first = c[dim] / bs * bs;
    long double sum = 0;
    for (int64_t ch = first; ch < first + bs && ch < channels; ++ch) {
      c[dim] = ch;
      const long double v = w[Ravel(c, shape)];
      sum += v * v;
    }
    map[e] = kernel_test::CastDouble(p, static_cast<double>(std::sqrt(sum)));
  }
  return map;
}

// n:m along dim: each run of m channels (zero padded at the end); the n
// smallest magnitudes go, lower index first on ties.
std::vector<float> RefNM(std::vector<float> w, const Shape& shape, int n, int m, int dim) {
  const int64_t channels = shape[dim];
  const std::vector<float> orig = w;
  for (int64_t e = 0; e < static_cast<int64_t>(w.size()); ++e) {
    auto c = Unravel(e, shape);
    if (c[dim] % m != 0) continue;  // e starts a run
    std::vector<float> mag(m);
    std::vector<int64_t> pos(m, -1);
    for (int j = 0; j < m; ++j) {
      auto cj = c;
      cj[dim] = c[dim] + j;
      if (cj[dim] < channels) {
        pos[j] = Ravel(cj, shape);
        mag[j] = std::fabs(orig[pos[j]]);
      } else {
        mag[j] = 0.0f;
      }
    }
    std::vector<bool> taken(m, false);
    for (int round = 0; round < n; ++round) {
      int best = -1;
      for (int j = 0; j < m; ++j)
        if (!taken[j] && (best < 0 || mag[j] < mag[best])) best = j;
      taken[best] = true;
      if (pos[best] >= 0) w[pos[best]] = 0.0f;
    }
  }
  return w;
}

void ExpectSameWeights(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!(got[i] == want[i])) {
      ADD_FAILURE() << what << ": element " << i << " is " << got[i] << ", expected " << want[i];
      if (++bad > 5) return;
    }
  }
}

// Bit-identical (untouched weights, including -0.0 and NaN payloads).
void ExpectUntouched(const std::vector<float>& got, const std::vector<float>& orig) {
  ASSERT_EQ(got.size(), orig.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_EQ(kernel_test::FloatBits(got[i]), kernel_test::FloatBits(orig[i])) << "element " << i << " changed";
}

// Random tensor with many repeated magnitudes (ties) when `ties`.
std::vector<float> PruneTensor(std::mt19937_64& rng, int64_t n, Dist d, Prec p, bool ties) {
  auto w = kernel_test::RandomTensor(rng, n, d, p);
  if (ties && n > 1) {
    for (auto& v : w)
      if (rng() % 3 == 0) v = (rng() % 2 ? 1 : -1) * std::fabs(w[rng() % n]);
  }
  return w;
}

const Dist kDists[] = {Dist::kNormal, Dist::kUniformPos, Dist::kHugeRange, Dist::kSmallInts,
                       Dist::kFewValues, Dist::kConstant, Dist::kZeros};
const double kTargets[] = {0.0, 1e-9, 0.1, 0.25, 1.0 / 3, 0.5, 0.7, 0.9, 0.99, 1 - 1e-12, 1.0};

// ---------------------------------------------------------------------------
// Threshold pruning

TEST(ThresholdPruneTest, MatchesReferenceAndSkipsBelowMinimumSparsity) {
  std::mt19937_64 rng(31);
  int pruned = 0, skipped = 0;
  for (int iter = 0; iter < 400; ++iter) {
    const int64_t n = 1 + static_cast<int64_t>(rng() % 60);
    const Dist d = kDists[iter % 7];
    auto w = PruneTensor(rng, n, d, iter % 2 ? Prec::k16 : Prec::k32, iter % 3 == 0);
    if (iter % 4 == 0)
      for (auto& v : w)
        if (rng() % 4 == 0) v = rng() % 2 ? 0.0f : -0.0f;
    // Thresholds: 0, an exact magnitude in the tensor (ties: <= prunes it),
    // and random ones.
    const float mags[] = {0.0f, std::fabs(w[rng() % n]), static_cast<float>(std::ldexp(1.0, -static_cast<int>(rng() % 20))),
                          1e-12f};
    for (float t : mags) {
      for (double min_sparsity : {0.0, 0.3, 0.5, 1.0}) {
        SCOPED_TRACE("n " + std::to_string(n) + " threshold " + std::to_string(t) + " min " + std::to_string(min_sparsity));
        std::vector<float> ref = w;
        int64_t zeros = 0;
        for (auto& v : ref) {
          if (std::fabs(v) <= t) v = 0.0f;
          zeros += v == 0.0f;
        }
        const double sparsity = static_cast<double>(zeros) / n;
        std::vector<float> got = w;
        const absl::Status s = ThresholdPrune(absl::MakeSpan(got), t, min_sparsity, Precision::kFloat32);
        if (sparsity < min_sparsity) {
          EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
          ExpectUntouched(got, w);
          ++skipped;
        } else {
          ASSERT_TRUE(s.ok()) << s;
          ExpectSameWeights(got, ref, "threshold");
          ++pruned;
        }
        if (HasFailure()) return;
      }
    }
  }
  EXPECT_GT(pruned, 100);
  EXPECT_GT(skipped, 100);
}

TEST(ThresholdPruneTest, Fp16WeightsCompareInFp16) {
  // fp16(0.10002) == 0.10003662109375: numpy compares in the weight dtype,
  // so this weight is pruned for fp16 weights but kept for fp32 ones.
  const float w16 = 0.10003662109375f;
  std::vector<float> half = {w16, 1.0f};
  ASSERT_TRUE(ThresholdPrune(absl::MakeSpan(half), 0.10002, 0.0, Precision::kFloat16).ok());
  EXPECT_EQ(half[0], 0.0f);
  std::vector<float> single = {w16, 1.0f};
  ASSERT_TRUE(ThresholdPrune(absl::MakeSpan(single), 0.10002, 0.0, Precision::kFloat32).ok());
  EXPECT_EQ(single[0], w16);
}

TEST(ThresholdPruneTest, LessOrEqualAndExistingZerosCount) {
  // 4 of 8 are |w| <= 0.5 (two of them already zero, one -0.0): sparsity 0.5.
  const std::vector<float> w = {0.5f, -0.5f, 0.0f, -0.0f, 0.50001f, 1.0f, -2.0f, 3.0f};
  std::vector<float> got = w;
  ASSERT_TRUE(ThresholdPrune(absl::MakeSpan(got), 0.5f, 0.5, Precision::kFloat32).ok());
  EXPECT_EQ(got, (std::vector<float>{0, 0, 0, 0, 0.50001f, 1, -2, 3}));
  got = w;
  const absl::Status s = ThresholdPrune(absl::MakeSpan(got), 0.49f, 0.5, Precision::kFloat32);  // only the 2 zeros: 0.25 < 0.5
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  ExpectUntouched(got, w);
}

TEST(ThresholdPruneTest, RejectsBadInput) {
  for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}) {
    std::vector<float> w = {1, 2, bad, 0};
    const std::vector<float> orig = w;
    EXPECT_EQ(ThresholdPrune(absl::MakeSpan(w), 1.5f, 0.0, Precision::kFloat32).code(), absl::StatusCode::kInvalidArgument);
    ExpectUntouched(w, orig);
  }
  std::vector<float> w = {1, 2};
  EXPECT_EQ(ThresholdPrune(absl::MakeSpan(w), -1.0f, 0.0, Precision::kFloat32).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ThresholdPrune(absl::MakeSpan(w), 1.0f, 1.5, Precision::kFloat32).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ThresholdPrune(absl::MakeSpan(w), 1.0f, -0.1, Precision::kFloat32).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(w, (std::vector<float>{1, 2}));
}

// ---------------------------------------------------------------------------
// Magnitude pruning

TEST(MagnitudePruneTest, MatchesReferencePercentile) {
  std::mt19937_64 rng(32);
  for (int iter = 0; iter < 300; ++iter) {
    const int64_t n = 1 + static_cast<int64_t>(iter < 60 ? iter % 4 : rng() % (iter % 5 == 0 ? 3000 : 200));
    const Dist d = kDists[iter % 7];
    const Prec p = iter % 2 ? Prec::k16 : Prec::k32;
    const auto w = PruneTensor(rng, n, d, p, iter % 3 == 0);
    for (double ts : kTargets) {
      SCOPED_TRACE("n " + std::to_string(n) + " dist " + std::to_string(static_cast<int>(d)) +
                   (p == Prec::k16 ? " fp16" : " fp32") + " target " + std::to_string(ts));
      std::vector<float> got = w;
      ASSERT_TRUE(MagnitudePrune(absl::MakeSpan(got), ts, ToPrecision(p)).ok());
      ExpectSameWeights(got, RefPruneByMap(w, Magnitudes(w), ts, p), "magnitude");
      if (ts == 0.0) ExpectUntouched(got, w);
      if (ts == 1.0) {
        for (float v : got) ASSERT_EQ(v, 0.0f);
      }
      if (HasFailure()) return;
    }
  }
}

// Documented counts: distinct magnitudes prune floor(vi) + 1 weights, where
// float noise in vi can add one (notes: N = 881, ts = 0.7 -> 617 zeros), and
// Core ML tools' tests expect [90,30,2,2] at 0.9 -> 1080 non-zeros and
// [70,81] at 0.2 -> 4536 non-zeros.
TEST(MagnitudePruneTest, CoreMLToolsCounts) {
  std::mt19937_64 rng(33);
  const struct {
    int64_t n;
    double ts;
    int64_t zeros;
  } cases[] = {{881, 0.7, 617}, {90 * 30 * 2 * 2, 0.9, 10800 - 1080}, {70 * 81, 0.2, 70 * 81 - 4536}};
  for (const auto& c : cases) {
    // Distinct magnitudes: a random permutation of 1..n, random signs, scaled.
    std::vector<float> w(c.n);
    for (int64_t i = 0; i < c.n; ++i) w[i] = static_cast<float>(i + 1) * 0.001f * (rng() % 2 ? 1 : -1);
    std::shuffle(w.begin(), w.end(), rng);
    std::vector<float> got = w;
    ASSERT_TRUE(MagnitudePrune(absl::MakeSpan(got), c.ts, Precision::kFloat32).ok());
    int64_t zeros = 0;
    for (float v : got) zeros += v == 0.0f;
    EXPECT_EQ(zeros, c.zeros) << "n " << c.n << " target " << c.ts;
  }
}

TEST(MagnitudePruneTest, TiesAtTheCutOffArePruned) {
  // Magnitudes 1,1,1,1,2,2,2,2. At 0.2 the virtual index is 1.4, the cut-off
  // 1: all four ones go (50%, more than the 20% asked for).
  const std::vector<float> w = {1, -1, 2, -2, 1, 2, -1, 2};
  std::vector<float> got = w;
  ASSERT_TRUE(MagnitudePrune(absl::MakeSpan(got), 0.2, Precision::kFloat16).ok());
  EXPECT_EQ(got, (std::vector<float>{0, 0, 2, -2, 0, 2, 0, 2}));
  got = w;
  ASSERT_TRUE(MagnitudePrune(absl::MakeSpan(got), 0.6, Precision::kFloat16).ok());  // vi 4.2: cut 2
  for (float v : got) EXPECT_EQ(v, 0.0f);
}

// The float64 percentile is cast to the weight dtype before the <=: for
// magnitudes {1, 2} at 0.9999 the cut-off is 1.9999, which fp16 rounds to 2.
TEST(MagnitudePruneTest, CutOffIsCastToWeightDtype) {
  std::vector<float> w = {-1, 2};
  ASSERT_TRUE(MagnitudePrune(absl::MakeSpan(w), 0.9999, Precision::kFloat16).ok());
  EXPECT_EQ(w, (std::vector<float>{0, 0}));
  w = {-1, 2};
  ASSERT_TRUE(MagnitudePrune(absl::MakeSpan(w), 0.9999, Precision::kFloat32).ok());
  EXPECT_EQ(w, (std::vector<float>{0, 2}));
}

TEST(MagnitudePruneTest, RejectsBadInput) {
  for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity()}) {
    std::vector<float> w = {1, 2, bad, 0};
    const std::vector<float> orig = w;
    EXPECT_EQ(MagnitudePrune(absl::MakeSpan(w), 0.5, Precision::kFloat16).code(), absl::StatusCode::kInvalidArgument);
    ExpectUntouched(w, orig);
  }
  std::vector<float> w = {1, 2};
  for (double ts : {-0.1, 1.1, std::nan("")}) {
    EXPECT_EQ(MagnitudePrune(absl::MakeSpan(w), ts, Precision::kFloat32).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(w, (std::vector<float>{1, 2}));
}

// ---------------------------------------------------------------------------
// Block sparsity

TEST(BlockMagnitudePruneTest, MatchesReference) {
  std::mt19937_64 rng(34);
  int checked = 0, skipped = 0;
  for (int iter = 0; iter < 1000; ++iter) {
    const int rank = 2 + iter % 4;
    Shape shape = kernel_test::RandomShape(rng, rank, rank >= 4 ? 5 : 9);
    shape[0] = 1 + static_cast<int64_t>(rng() % 20);
    shape[1] = 1 + static_cast<int64_t>(rng() % 20);
    const int dim = static_cast<int>(rng() % 2);
    const int bs = 2 + static_cast<int>(rng() % 6);
    const Prec p = iter % 2 ? Prec::k16 : Prec::k32;
    const Dist d = kDists[iter % 7];
    const auto w = PruneTensor(rng, NumElements(shape), d, p, iter % 3 == 0);
    const double ts = kTargets[rng() % (sizeof(kTargets) / sizeof(kTargets[0]))];
    SCOPED_TRACE("shape " + ShapeStr(shape) + " dim " + std::to_string(dim) + " block " + std::to_string(bs) +
                 " target " + std::to_string(ts) + (p == Prec::k16 ? " fp16" : " fp32"));
    std::vector<float> got = w;
    const absl::Status s = BlockMagnitudePrune(absl::MakeSpan(got), shape, bs, dim, ts, ToPrecision(p));
    if (bs > shape[dim] / 2.0) {
      EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
      ExpectUntouched(got, w);
      ++skipped;
    } else {
      ASSERT_TRUE(s.ok()) << s;
      ExpectSameWeights(got, RefPruneByMap(w, RefBlockMap(w, shape, bs, dim, p), ts, p), "block");
      ++checked;
    }
    if (HasFailure()) return;
  }
  EXPECT_GT(checked, 400);
  EXPECT_GT(skipped, 100);
}

// tp:449-511.
TEST(BlockMagnitudePruneTest, CoreMLToolsExamples) {
  std::vector<float> w = {1, 3, 4, -6, -7, 2, 0, 3, 4, -9, 2, -1};
  ASSERT_TRUE(BlockMagnitudePrune(absl::MakeSpan(w), {4, 3}, 2, 0, 0.5, Precision::kFloat32).ok());
  EXPECT_EQ(w, (std::vector<float>{1, 3, 0, -6, -7, 0, 0, 0, 0, -9, 0, 0}));
  std::vector<float> w2 = {1, 3, 4, 18, 1, -6, -7, 2, 2, 9, 0, 3, 4, 8, 9};
  ASSERT_TRUE(BlockMagnitudePrune(absl::MakeSpan(w2), {3, 5}, 2, 1, 0.5, Precision::kFloat32).ok());
  EXPECT_EQ(w2, (std::vector<float>{0, 0, 4, 18, 0, -6, -7, 0, 0, 9, 0, 0, 0, 0, 9}));
}

TEST(BlockMagnitudePruneTest, SkipsAndRejects) {
  const std::vector<float> orig(4 * 5 * 2, 1.5f);
  std::vector<float> w = orig;
  // block_size > half the axis: a skip, weights untouched.
  EXPECT_EQ(BlockMagnitudePrune(absl::MakeSpan(w), {4, 5, 2}, 3, 0, 0.5, Precision::kFloat16).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(BlockMagnitudePrune(absl::MakeSpan(w), {4, 5, 2}, 3, 1, 0.5, Precision::kFloat16).code(),
            absl::StatusCode::kFailedPrecondition);
  ExpectUntouched(w, orig);
  // Rank 1 and rank 6: skips.
  std::vector<float> w1(8, 1.0f);
  EXPECT_EQ(BlockMagnitudePrune(absl::MakeSpan(w1), {8}, 2, 0, 0.5, Precision::kFloat16).code(),
            absl::StatusCode::kFailedPrecondition);
  std::vector<float> w6(64, 1.0f);
  EXPECT_EQ(BlockMagnitudePrune(absl::MakeSpan(w6), {4, 4, 1, 1, 2, 2}, 2, 0, 0.5, Precision::kFloat16).code(),
            absl::StatusCode::kFailedPrecondition);
  // Bad options.
  EXPECT_EQ(BlockMagnitudePrune(absl::MakeSpan(w), {4, 5, 2}, 1, 0, 0.5, Precision::kFloat16).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BlockMagnitudePrune(absl::MakeSpan(w), {4, 5, 2}, 2, 2, 0.5, Precision::kFloat16).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(BlockMagnitudePrune(absl::MakeSpan(w), {4, 5, 2}, 2, 0, 1.5, Precision::kFloat16).code(),
            absl::StatusCode::kInvalidArgument);
  w[3] = std::nanf("");
  EXPECT_EQ(BlockMagnitudePrune(absl::MakeSpan(w), {4, 5, 2}, 2, 0, 0.5, Precision::kFloat16).code(),
            absl::StatusCode::kInvalidArgument);
  w[3] = 1.5f;
  ExpectUntouched(w, orig);
}

// ---------------------------------------------------------------------------
// n:m sparsity

TEST(NMPruneTest, MatchesReference) {
  std::mt19937_64 rng(35);
  int checked = 0, skipped = 0;
  for (int iter = 0; iter < 1000; ++iter) {
    const int rank = 2 + iter % 4;
    const Shape shape = kernel_test::RandomShape(rng, rank, rank >= 4 ? 6 : 16);
    const int dim = static_cast<int>(rng() % 2);
    const int m = 1 + static_cast<int>(rng() % 7);
    const int n = static_cast<int>(rng() % (m + 1));
    const Prec p = iter % 2 ? Prec::k16 : Prec::k32;
    const auto w = PruneTensor(rng, NumElements(shape), kDists[iter % 7], p, iter % 2 == 0);
    SCOPED_TRACE("shape " + ShapeStr(shape) + " dim " + std::to_string(dim) + " " + std::to_string(n) + ":" +
                 std::to_string(m));
    std::vector<float> got = w;
    const absl::Status s = NMPrune(absl::MakeSpan(got), shape, n, m, dim);
    if (m > shape[dim] / 2.0) {
      EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
      ExpectUntouched(got, w);
      ++skipped;
    } else {
      ASSERT_TRUE(s.ok()) << s;
      ExpectSameWeights(got, RefNM(w, shape, n, m, dim), "n:m");
      ++checked;
    }
    if (HasFailure()) return;
  }
  EXPECT_GT(checked, 300);
  EXPECT_GT(skipped, 100);
}

// tp:553-628.
TEST(NMPruneTest, CoreMLToolsExamples) {
  std::vector<float> w = {1, 3, 4, -3, -6, -7, 2, 4, 0, 3, 4, 1, -9, 2, -1, 8};
  ASSERT_TRUE(NMPrune(absl::MakeSpan(w), {4, 4}, 1, 2, 1).ok());
  EXPECT_EQ(w, (std::vector<float>{0, 3, 4, 0, 0, -7, 0, 4, 0, 3, 4, 0, -9, 0, 0, 8}));
  std::vector<float> w2 = {1,  3, 4,  -3, 2, 4,  -6, -7, 2, 4, 6, 8,  0,  4, 4, 1, -9, -4, -9, 2,  -1,
                           8,  3, 9,  -1, 5, 0,  8,  9,  -3, -3, 3, 6, 3, 6, -1, 2,  1,  -2, 8, 2, -6};
  ASSERT_TRUE(NMPrune(absl::MakeSpan(w2), {7, 6}, 2, 3, 0).ok());
  const std::vector<float> expected = {0,  0, 0, 0, 0,  0, -6, -7, 0, 4, 0, 8, 0, 0, 4, 0, -9, 0, -9, 0, 0,
                                       0,  0, 9, 0, 5,  0, 8,  9,  0, 0, 0, 6, 0, 0, 0, 2, 1,  -2, 8, 2, -6};
  EXPECT_EQ(w2, expected);
}

TEST(NMPruneTest, TiesPruneLowerIndexFirst) {
  // Equal magnitudes along dim 1 in runs of 4, 2:4 -> the first two go.
  std::vector<float> w = {1, -1, 1, -1, 2, 2, -2, 2};
  ASSERT_TRUE(NMPrune(absl::MakeSpan(w), {1, 8}, 2, 4, 1).ok());
  EXPECT_EQ(w, (std::vector<float>{0, 0, 1, -1, 0, 0, -2, 2}));
  // Padding competes: 9 channels in runs of 4, so the last run is
  // {1, pad 0, pad 0, pad 0}; 1:4 picks a padding zero and the 1 survives.
  std::vector<float> w2 = {5, 4, 3, 2, 9, 8, 7, 6, 1};
  ASSERT_TRUE(NMPrune(absl::MakeSpan(w2), {1, 9}, 1, 4, 1).ok());
  EXPECT_EQ(w2, (std::vector<float>{5, 4, 3, 0, 9, 8, 7, 0, 1}));
  // A real zero ties with the padding and has the lower index: it is the one
  // chosen (no visible change), the others survive.
  std::vector<float> w3 = {5, 4, 3, 2, 9, 8, 7, 6, 0};
  ASSERT_TRUE(NMPrune(absl::MakeSpan(w3), {1, 9}, 2, 4, 1).ok());
  EXPECT_EQ(w3, (std::vector<float>{5, 4, 0, 0, 9, 8, 0, 0, 0}));
}

TEST(NMPruneTest, SkipsAndRejects) {
  const std::vector<float> orig(5 * 4, 2.0f);
  std::vector<float> w = orig;
  EXPECT_EQ(NMPrune(absl::MakeSpan(w), {5, 4}, 1, 3, 0).code(), absl::StatusCode::kFailedPrecondition);  // 3 > 2.5
  EXPECT_EQ(NMPrune(absl::MakeSpan(w), {5, 4}, 1, 3, 1).code(), absl::StatusCode::kFailedPrecondition);  // 3 > 2
  ExpectUntouched(w, orig);
  std::vector<float> w1(8, 1.0f);
  EXPECT_EQ(NMPrune(absl::MakeSpan(w1), {8}, 1, 2, 0).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(NMPrune(absl::MakeSpan(w), {5, 4}, 3, 2, 0).code(), absl::StatusCode::kInvalidArgument);  // n > m
  EXPECT_EQ(NMPrune(absl::MakeSpan(w), {5, 4}, 1, 2, 2).code(), absl::StatusCode::kInvalidArgument);  // dim
  w[0] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(NMPrune(absl::MakeSpan(w), {5, 4}, 1, 2, 0).code(), absl::StatusCode::kInvalidArgument);
  w[0] = 2.0f;
  ExpectUntouched(w, orig);
}

}  // namespace
}  // namespace coremlz::compress
