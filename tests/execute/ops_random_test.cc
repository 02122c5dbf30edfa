// The random ops: reproducible for one seed (and differing across seeds),
// within their ranges, and with the moments / frequencies of their
// distributions over many draws (fixed seeds, so deterministic).
#include <cmath>

#include "gtest/gtest.h"
#include "op_test_util.h"

namespace coremlz::execute::testing {
namespace {

Tensor Draw(const std::string& type, Args args, int64_t seed) {
  args["seed"] = {Tensor::IntScalar(static_cast<int32_t>(seed))};
  auto got = RunOp(type, args);
  EXPECT_TRUE(got.ok()) << got.status();
  return got.ok() ? (*got)[0] : Tensor();
}

double Mean(const Tensor& t) {
  double s = 0;
  for (float v : t.floats()) s += v;
  return s / t.size();
}

TEST(RandomOps, UniformNormalBernoulliMomentsAndReproducibility) {
  const Args shape = {{"shape", {Ints({200, 500})}}};
  Args uniform = shape;
  uniform["low"] = {Tensor::FloatScalar(-2)};
  uniform["high"] = {Tensor::FloatScalar(4)};
  Tensor u = Draw("random_uniform", uniform, 7);
  ASSERT_EQ(u.shape(), (Shape{200, 500}));
  for (float v : u.floats()) ASSERT_TRUE(v >= -2 && v < 4) << v;
  EXPECT_NEAR(Mean(u), 1, 0.03);  // sd of the mean: 6 / sqrt(12 * 1e5) = 0.0055
  Tensor again = Draw("random_uniform", uniform, 7), other = Draw("random_uniform", uniform, 8);
  EXPECT_EQ(std::vector<float>(u.floats().begin(), u.floats().end()),
            std::vector<float>(again.floats().begin(), again.floats().end()));
  EXPECT_NE(u.floats()[0], other.floats()[0]);

  Args normal = shape;
  normal["mean"] = {Tensor::FloatScalar(3)};
  normal["stddev"] = {Tensor::FloatScalar(2)};
  Tensor n = Draw("random_normal", normal, 1);
  const double m = Mean(n);
  double var = 0;
  for (float v : n.floats()) var += (v - m) * (v - m) / n.size();
  EXPECT_NEAR(m, 3, 0.03);
  EXPECT_NEAR(std::sqrt(var), 2, 0.03);

  Args bernoulli = shape;
  bernoulli["prob"] = {Tensor::FloatScalar(0.3f)};
  Tensor b = Draw("random_bernoulli", bernoulli, -1);
  for (float v : b.floats()) ASSERT_TRUE(v == 0 || v == 1);
  EXPECT_NEAR(Mean(b), 0.3, 0.01);
  bernoulli["prob"] = {Tensor::FloatScalar(1.5f)};
  EXPECT_EQ(RunOp("random_bernoulli", bernoulli).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunOp("random_uniform", {{"shape", {Ints({1 << 20, 1 << 20})}}}).status().code(),
            absl::StatusCode::kResourceExhausted);  // checked before allocating
}

TEST(RandomOps, CategoricalFollowsTheSoftmaxOrTheProbabilities) {
  // Two distributions: logits log([1, 2, 7]) and a certain one.
  Tensor logits = Tensor::Float({2, 3}, {0, std::log(2.f), std::log(7.f), -1e9f, 0, -1e9f});
  Tensor draws = Draw("random_categorical", {{"x", {logits}}, {"size", {Tensor::IntScalar(50000)}}}, 3);
  ASSERT_EQ(draws.shape(), (Shape{2, 50000}));
  double freq[3] = {0, 0, 0};
  for (int64_t i = 0; i < 50000; ++i) freq[static_cast<int>(draws.floats()[i])] += 1.0 / 50000;
  EXPECT_NEAR(freq[0], 0.1, 0.01);
  EXPECT_NEAR(freq[1], 0.2, 0.01);
  EXPECT_NEAR(freq[2], 0.7, 0.01);
  for (int64_t i = 50000; i < 100000; ++i) ASSERT_EQ(draws.floats()[i], 1);
  // probs mode: unnormalised weights.
  Tensor probs = Tensor::Float({1, 2}, {3, 1});
  draws = Draw("random_categorical", {{"x", {probs}}, {"mode", {Str("probs")}}, {"size", {Tensor::IntScalar(40000)}}}, 4);
  EXPECT_NEAR(Mean(draws), 0.25, 0.01);
  EXPECT_EQ(RunOp("random_categorical", {{"x", {Tensor::Float({1, 2}, {-1, 1})}}, {"mode", {Str("probs")}}})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coremlz::execute::testing
