// The random ops (iOS15 random.py): random_uniform, random_normal,
// random_bernoulli and random_categorical. They do NOT reproduce Core ML's
// random stream (which is not specified); they draw from this executor's
// own (random_stream.h), seeded from the op's `seed` and the name of its
// first output (so two ops with the default seed -1 still draw different
// values): uniform from 53 random bits, normal by Box-Muller, categorical by
// the inverse CDF. Outputs are float32 (categorical: the drawn class indices).
#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/op_registry.h"
#include "execute/random_stream.h"

namespace coremlz::execute {
namespace {

// The op's stream: its seed and the name of its first output.
RandomStream Stream(const OpContext& ctx, int64_t seed) {
  return RandomStream(ctx.outputs().empty() ? "" : ctx.outputs()[0].name, seed);
}

// The output of a `shape`-input op, checked before allocating.
absl::StatusOr<Tensor> Shaped(const OpContext& ctx) {
  ASSIGN_OR_RETURN(std::vector<int64_t> shape, ctx.Ints("shape"));
  return Tensor::Allocate(DType::kFloat32, Shape(shape.begin(), shape.end()));
}

absl::StatusOr<std::vector<Tensor>> RandomUniform(const OpContext& ctx) {
  ASSIGN_OR_RETURN(double low, ctx.Float("low", 0));
  ASSIGN_OR_RETURN(double high, ctx.Float("high", 1));
  ASSIGN_OR_RETURN(int64_t seed, ctx.Int("seed", -1));
  ASSIGN_OR_RETURN(Tensor y, Shaped(ctx));
  RandomStream s = Stream(ctx, seed);
  for (float& v : y.mutable_floats()) v = static_cast<float>(low + (high - low) * s.Uniform());
  return Outputs(std::move(y));
}

absl::StatusOr<std::vector<Tensor>> RandomNormal(const OpContext& ctx) {
  ASSIGN_OR_RETURN(double mean, ctx.Float("mean", 0));
  ASSIGN_OR_RETURN(double stddev, ctx.Float("stddev", 1));
  ASSIGN_OR_RETURN(int64_t seed, ctx.Int("seed", -1));
  ASSIGN_OR_RETURN(Tensor y, Shaped(ctx));
  RandomStream s = Stream(ctx, seed);
  for (float& v : y.mutable_floats()) v = static_cast<float>(mean + stddev * s.Normal());
  return Outputs(std::move(y));
}

absl::StatusOr<std::vector<Tensor>> RandomBernoulli(const OpContext& ctx) {
  ASSIGN_OR_RETURN(double prob, ctx.Float("prob", 0.5));
  ASSIGN_OR_RETURN(int64_t seed, ctx.Int("seed", -1));
  if (!(prob >= 0 && prob <= 1)) return ctx.Invalid("prob must be in [0, 1]");
  ASSIGN_OR_RETURN(Tensor y, Shaped(ctx));
  RandomStream s = Stream(ctx, seed);
  for (float& v : y.mutable_floats()) v = s.Uniform() < prob ? 1.f : 0.f;
  return Outputs(std::move(y));
}

// random_categorical: `size` draws from each distribution of the last axis
// (softmax of logits, or the normalised probabilities).
absl::StatusOr<std::vector<Tensor>> RandomCategorical(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(std::string mode, ctx.String("mode", "logits"));
  ASSIGN_OR_RETURN(int64_t size, ctx.Int("size", 1));
  ASSIGN_OR_RETURN(int64_t seed, ctx.Int("seed", -1));
  if (!x->is_float() || x->rank() < 1) return ctx.Invalid("x must be floating point with rank >= 1");
  if (mode != "logits" && mode != "probs") return ctx.Invalid(absl::StrCat("unknown mode '", mode, "'"));
  if (size < 0) return ctx.Invalid("size must not be negative");
  const int64_t k = x->dim(x->rank() - 1);
  if (k == 0) return ctx.Invalid("x has no categories");
  const int64_t rows = x->size() / k;
  Shape shape = x->shape();
  shape.back() = size;
  ASSIGN_OR_RETURN(Tensor y, Tensor::Allocate(DType::kFloat32, shape));
  RandomStream s = Stream(ctx, seed);
  std::vector<double> cdf(k);
  for (int64_t r = 0; r < rows; ++r) {
    const float* p = x->floats().data() + r * k;
    double peak = -INFINITY;
    if (mode == "logits") {
      for (int64_t j = 0; j < k; ++j) peak = std::max(peak, static_cast<double>(p[j]));
    }
    double total = 0;
    for (int64_t j = 0; j < k; ++j) {
      const double w = mode == "logits" ? std::exp(p[j] - peak) : p[j];
      if (!(w >= 0) || !std::isfinite(w)) return ctx.Invalid("probabilities must be finite and non-negative");
      total += w;
      cdf[j] = total;
    }
    if (!(total > 0)) return ctx.Invalid("a distribution has no mass");
    for (int64_t i = 0; i < size; ++i) {
      const double u = s.Uniform() * total;
      int64_t j = std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin();
      y.mutable_floats()[r * size + i] = static_cast<float>(std::min(j, k - 1));
    }
  }
  return Outputs(std::move(y));
}

}  // namespace

void RegisterRandomOps(OpRegistry* r) {
  r->Register("random_uniform", RandomUniform);
  r->Register("random_normal", RandomNormal);
  r->Register("random_bernoulli", RandomBernoulli);
  r->Register("random_categorical", RandomCategorical);
}

}  // namespace coremlz::execute
