// NeuralNetwork random layers: categoricalDistribution (numSamples class
// indices drawn from each distribution along the last axis: the softmax of
// the input divided by temperature when isLogits, else the input's values
// as weights) and randomNormal / randomUniform / randomBernoulli in their
// Like (the input's shape), Static (outputShape) and Dynamic (the shape the
// input holds) forms. The draws come from this executor's own stream
// (random_stream.h) seeded from `seed` and the layer's name, NOT from Core
// ML's (which is not specified): a run repeats, but does not match Core
// ML's samples. categoricalDistribution's eps (1e-10 by coremltools'
// default) is not read: the proto does not say what it guards, and the
// weights are used as given.
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/nn_layer.h"
#include "execute/random_stream.h"

namespace coremlz::execute {

absl::StatusOr<NnKernel> BuildCategoricalDistribution(const NnLayerSpec& spec) {
  const int64_t seed = spec.params.Int(1), samples = spec.params.Int(2);
  const bool logits = spec.params.Bool(3);
  // An absent temperature (0) reads as coremltools' default, 1.
  const double temperature = spec.params.Float(5) == 0 ? 1.0 : spec.params.Float(5);
  if (samples < 1 || samples > MaxTensorElements()) {
    return spec.Invalid(absl::StrCat("numSamples ", samples, " is out of range"));
  }
  if (!(temperature > 0) || !std::isfinite(temperature)) return spec.Invalid("temperature must be positive");
  if (!logits && temperature != 1.0) return spec.Unimplemented("a temperature for probabilities");
  const NnLayerLabel label = spec;
  const std::string name = spec.name;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    const Tensor& x = *in[0];
    if (!x.is_float() || x.rank() < 1) return label.Invalid("expects a float input of rank >= 1");
    const int64_t k = x.dim(x.rank() - 1);
    if (k == 0) return label.Invalid("the input has no categories");
    const int64_t rows = x.size() / k;
    Shape shape = x.shape();
    shape.back() = samples;
    RETURN_IF_ERROR(CheckShape(shape));
    ASSIGN_OR_RETURN(Tensor y, Tensor::Allocate(DType::kFloat32, shape));
    RandomStream s(name, seed);
    std::vector<double> cdf(k);
    for (int64_t r = 0; r < rows; ++r) {
      const float* p = x.floats().data() + r * k;
      double peak = -INFINITY;
      if (logits) {
        for (int64_t j = 0; j < k; ++j) peak = std::max(peak, p[j] / temperature);
      }
      double total = 0;
      for (int64_t j = 0; j < k; ++j) {
        const double w = logits ? std::exp(p[j] / temperature - peak) : p[j];
        if (!(w >= 0) || !std::isfinite(w)) return label.Invalid("probabilities must be finite and non-negative");
        total += w;
        cdf[j] = total;
      }
      if (!(total > 0) || !std::isfinite(total)) return label.Invalid("a distribution has no mass");
      for (int64_t i = 0; i < samples; ++i) {
        const double u = s.Uniform() * total;
        const int64_t j = std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin();
        y.mutable_floats()[r * samples + i] = static_cast<float>(std::min(j, k - 1));
      }
    }
    return Outputs(std::move(y));
  });
}

namespace {


}  // namespace

// randomNormal*, randomUniform*, randomBernoulli*: fields seed = 1, then
// (mean, stdDev), (minVal, maxVal) or (prob), then the Static forms'
// outputShape.
absl::StatusOr<NnKernel> BuildRandomFill(const NnLayerSpec& spec) {
  const std::string& t = spec.type;
  const bool bernoulli = t.rfind("randomBernoulli", 0) == 0, uniform = t.rfind("randomUniform", 0) == 0;
  const bool is_static = t.size() > 6 && t.compare(t.size() - 6, 6, "Static") == 0;
  const bool dynamic = t.size() > 7 && t.compare(t.size() - 7, 7, "Dynamic") == 0;
  const int64_t seed = spec.params.Int(1);
  const double a = spec.params.Float(2), b = bernoulli ? 0 : spec.params.Float(3);
  if (!std::isfinite(a) || !std::isfinite(b)) return spec.Invalid("needs finite parameters");
  if (bernoulli && !(a >= 0 && a <= 1)) return spec.Invalid("prob must be in [0, 1]");
  if (uniform && a > b) return spec.Invalid("minVal is greater than maxVal");
  if (!bernoulli && !uniform && b < 0) return spec.Invalid("stdDev must not be negative");
  Shape fixed;
  if (is_static) {
    ASSIGN_OR_RETURN(std::vector<int64_t> shape, spec.params.Ints(bernoulli ? 3 : 4));
    if (shape.empty()) return spec.Invalid("has no outputShape");
    for (int64_t d : shape) {
      if (d < 0) return spec.Invalid("outputShape has a negative size");
    }
    RETURN_IF_ERROR(CheckShape(shape));
    fixed.assign(shape.begin(), shape.end());
  }
  const NnLayerLabel label = spec;
  const std::string name = spec.name;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    Shape shape = fixed;
    if (dynamic) {
      ASSIGN_OR_RETURN(shape, NnShapeInput(*in[0], label));
    } else if (!is_static) {
      shape = in[0]->shape();
    }
    ASSIGN_OR_RETURN(Tensor y, Tensor::Allocate(DType::kFloat32, shape));
    RandomStream s(name, seed);
    for (float& v : y.mutable_floats()) {
      v = static_cast<float>(bernoulli ? (s.Uniform() < a ? 1 : 0)
                             : uniform ? a + (b - a) * s.Uniform()
                                       : a + b * s.Normal());
    }
    return Outputs(std::move(y));
  });
}

}  // namespace coremlz::execute
