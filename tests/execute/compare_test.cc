// Output comparison metrics against slow, obvious computations.
#include "execute/compare.h"

#include <cmath>
#include <random>

#include "gtest/gtest.h"

namespace coremlz::execute {
namespace {

TEST(CompareOutputs, MatchesDefinitions) {
  std::mt19937 rng(1);
  std::normal_distribution<float> n(0, 1);
  std::vector<float> ref(1000), out(1000);
  for (size_t i = 0; i < ref.size(); ++i) ref[i] = n(rng), out[i] = ref[i] + 0.01f * n(rng);
  auto c = CompareOutputs(ref, out);
  ASSERT_TRUE(c.ok());
  double se = 0, peak = 0, energy = 0, dot = 0, na = 0, mx = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = double(ref[i]) - out[i];
    se += d * d;
    peak = std::max(peak, double(ref[i]) * ref[i]);
    energy += double(ref[i]) * ref[i];
    dot += double(ref[i]) * out[i];
    na += double(out[i]) * out[i];
    mx = std::max(mx, std::fabs(d));
  }
  const double mse = se / ref.size();
  EXPECT_NEAR(c->psnr_db, 10 * std::log10(peak / mse), 1e-9);
  EXPECT_NEAR(c->snr_db, 10 * std::log10(energy / ref.size() / mse), 1e-9);
  EXPECT_NEAR(c->cosine, dot / std::sqrt(energy * na), 1e-12);
  EXPECT_DOUBLE_EQ(c->max_abs_error, mx);
  EXPECT_GT(c->psnr_db, c->snr_db);  // peak >= mean energy
}

TEST(CompareOutputs, EdgeCases) {
  std::vector<float> a = {1, -2, 3};
  auto same = CompareOutputs(a, a);
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE(std::isinf(same->psnr_db));
  EXPECT_DOUBLE_EQ(same->cosine, 1);
  std::vector<float> zeros(3, 0.0f);
  auto z = CompareOutputs(zeros, zeros);
  ASSERT_TRUE(z.ok());
  EXPECT_DOUBLE_EQ(z->cosine, 1);
  std::vector<float> neg = {-1, 2, -3};
  EXPECT_NEAR(CompareOutputs(a, neg)->cosine, -1, 1e-12);
  EXPECT_FALSE(CompareOutputs(a, std::vector<float>{1, 2}).ok());
  EXPECT_TRUE(CompareOutputs({}, {}).ok());
}

TEST(CompareClassScores, TopKAndKl) {
  // Two rows of 6 classes.
  std::vector<float> ref = {0, 5, 1, 4, 2, 3, /**/ 9, 1, 2, 3, 4, 5};
  std::vector<float> out = {0, 4, 1, 5, 2, 3, /**/ 9, 1, 2, 3, 4, 5};
  auto c = CompareClassScores(ref, out, 6);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->rows, 2);
  EXPECT_DOUBLE_EQ(c->top1_agreement, 0.5);  // row 0: 1 vs 3
  EXPECT_DOUBLE_EQ(c->top5_overlap, 1.0);    // same top-5 sets
  // KL of row 0 by hand; row 1 is 0.
  auto softmax = [](const float* v) {
    std::vector<double> p(6);
    double s = 0;
    for (int i = 0; i < 6; ++i) s += std::exp(double(v[i]));
    for (int i = 0; i < 6; ++i) p[i] = std::exp(double(v[i])) / s;
    return p;
  };
  const auto p = softmax(ref.data()), q = softmax(out.data());
  double kl = 0;
  for (int i = 0; i < 6; ++i) kl += p[i] * std::log(p[i] / q[i]);
  EXPECT_NEAR(c->mean_kl, kl / 2, 1e-12);
  EXPECT_FALSE(CompareClassScores(ref, out, 5).ok());
  auto few = CompareClassScores(std::vector<float>{1, 2}, std::vector<float>{2, 1}, 2);
  ASSERT_TRUE(few.ok());
  EXPECT_DOUBLE_EQ(few->top1_agreement, 0);
  EXPECT_DOUBLE_EQ(few->top5_overlap, 1);  // k = 2 classes
}

// Rows that already are probabilities (a classifier's, a softmax output's)
// are compared as they are, not through another softmax.
TEST(CompareClassScores, ProbabilitiesAreComparedAsTheyAre) {
  const std::vector<float> ref = {0.7f, 0.2f, 0.1f, 0.0f}, out = {0.6f, 0.3f, 0.05f, 0.05f};
  auto c = CompareClassScores(ref, out, 4);
  ASSERT_TRUE(c.ok());
  double kl = 0;
  for (int i = 0; i < 4; ++i) {
    if (ref[i] > 0) kl += double(ref[i]) * std::log(double(ref[i]) / double(out[i]));
  }
  EXPECT_NEAR(c->mean_kl, kl, 1e-9);
  EXPECT_GT(c->mean_kl, 0.05);  // softmax of these rows would give ~0.003
  // A class the compressed model rules out costs a large, finite divergence.
  auto ruled_out = CompareClassScores(std::vector<float>{0.5f, 0.5f}, std::vector<float>{1.0f, 0.0f}, 2);
  ASSERT_TRUE(ruled_out.ok());
  EXPECT_GT(ruled_out->mean_kl, 10);
  EXPECT_TRUE(std::isfinite(ruled_out->mean_kl));
  // Logits that only look like a distribution in one of the two rows still
  // go through softmax (both rows are treated alike).
  auto mixed = CompareClassScores(std::vector<float>{0.5f, 0.5f}, std::vector<float>{2.0f, -1.0f}, 2);
  ASSERT_TRUE(mixed.ok());
  const double p0 = 0.5, q0 = std::exp(2.0) / (std::exp(2.0) + std::exp(-1.0));
  EXPECT_NEAR(mixed->mean_kl, p0 * std::log(p0 / q0) + p0 * std::log(p0 / (1 - q0)), 1e-9);
}

}  // namespace
}  // namespace coremlz::execute
