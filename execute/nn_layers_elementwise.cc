// NeuralNetwork elementwise layers: activation (every nonlinearity and its
// parameters), unary, the multi-input add/multiply/average/max/min, the
// two-input *Broadcastable layers (NumPy broadcasting for both: the limited
// broadcasting of the old layers is a subset of it), the parameterless ND
// unary layers (ceil, floor, sign, round, exp2, trigonometric and
// hyperbolic functions, erf, gelu), and the comparison and logical layers
// (1.0 for true, 0.0 for false; an input is true when it is not 0).
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/broadcast.h"
#include "execute/nn_layer.h"

namespace coremlz::execute {
namespace {

using Binary = std::function<float(float, float)>;

absl::StatusOr<std::vector<Tensor>> Map(const Tensor& x, const NnLayerLabel& label,
                                        const std::function<float(float)>& f) {
  if (!x.is_float()) return label.Invalid("expects a float input");
  Tensor y = Tensor::Zeros(DType::kFloat32, x.shape());
  auto src = x.floats();
  auto dst = y.mutable_floats();
  for (int64_t i = 0; i < x.size(); ++i) dst[i] = f(src[i]);
  return Outputs(std::move(y));
}

// Folds the inputs left to right with `op`, broadcasting as it goes. The
// first step reads in[0] where it is (copying it first put one more
// activation-sized tensor in EDSR's peak); later steps fold into the result
// in place while its shape does not grow.
absl::StatusOr<Tensor> Fold(const std::vector<const Tensor*>& in, const NnLayerLabel& label, const Binary& op) {
  if (!in[0]->is_float()) return label.Invalid("expects float inputs");
  Tensor acc;
  const Tensor* a = in[0];
  for (size_t k = 1; k < in.size(); ++k) {
    const Tensor& b = *in[k];
    if (!b.is_float()) return label.Invalid("expects float inputs");
    absl::StatusOr<Shape> shape = BroadcastShapes(a->shape(), b.shape());
    if (!shape.ok()) return label.Invalid(std::string(shape.status().message()));
    const bool in_place = a == &acc && *shape == acc.shape();
    Tensor next = in_place ? Tensor() : Tensor::Zeros(DType::kFloat32, *shape);
    auto pa = a->floats();
    auto pb = b.floats();
    auto out = in_place ? acc.mutable_floats() : next.mutable_floats();
    ForEachBroadcast(a->shape(), b.shape(), *shape,
                     [&](int64_t i, int64_t ia, int64_t ib) { out[i] = op(pa[ia], pb[ib]); });
    if (!in_place) acc = std::move(next);
    a = &acc;
  }
  if (a != &acc) acc = *a;  // a single input
  return acc;
}

// The old multi-input layers: one input combines with the scalar `alpha`
// (when the layer has one), several fold pairwise.
absl::StatusOr<NnKernel> MultiInput(const NnLayerSpec& spec, Binary op, bool has_alpha, bool average = false) {
  const float alpha = spec.params.Float(1);
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    if (in.size() == 1) {
      if (!has_alpha) return label.Invalid("needs at least two inputs");
      return Map(*in[0], label, [&](float v) { return op(v, alpha); });
    }
    ASSIGN_OR_RETURN(Tensor y, Fold(in, label, op));
    if (average) {
      const float n = static_cast<float>(in.size());
      for (float& v : y.mutable_floats()) v /= n;
    }
    return Outputs(std::move(y));
  });
}

absl::StatusOr<NnKernel> TwoInputs(const NnLayerSpec& spec, Binary op) {
  if (spec.input_count != 2) return spec.Invalid("needs two inputs");
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    ASSIGN_OR_RETURN(Tensor y, Fold(in, label, op));
    return Outputs(std::move(y));
  });
}

// A per-channel parameter (axis -3) of length C or 1, as PReLU and
// parametricSoftplus take them: calls f(value, param) for every element.
absl::StatusOr<std::vector<Tensor>> PerChannel(const Tensor& x, const NnLayerLabel& label,
                                               const std::vector<const Tensor*>& params,
                                               const std::function<float(float, const float*)>& f) {
  if (!x.is_float() || x.rank() < 3) return label.Invalid("expects a float input of rank >= 3");
  const int64_t channels = x.dim(x.rank() - 3);
  const int64_t inner = x.dim(x.rank() - 2) * x.dim(x.rank() - 1);
  for (const Tensor* p : params) {
    if (p->size() != 1 && p->size() != channels) {
      return label.Invalid(absl::StrCat("parameters must have 1 or ", channels, " values"));
    }
  }
  Tensor y = Tensor::Zeros(DType::kFloat32, x.shape());
  auto src = x.floats();
  auto dst = y.mutable_floats();
  std::vector<float> values(params.size());
  for (int64_t i = 0; i < x.size(); ++i) {
    const int64_t c = (i / inner) % channels;
    for (size_t k = 0; k < params.size(); ++k) values[k] = params[k]->floats()[params[k]->size() == 1 ? 0 : c];
    dst[i] = f(src[i], values.data());
  }
  return Outputs(std::move(y));
}

}  // namespace

absl::StatusOr<NnKernel> BuildActivation(const NnLayerSpec& spec) {
  // ActivationParams' oneof: the one set member.
  const std::vector<int> set = spec.params.LengthDelimitedIn(1, 1000);
  if (set.size() != 1) return spec.Invalid("must set exactly one nonlinearity");
  const int which = set[0];
  ASSIGN_OR_RETURN(WireMessage p, spec.params.Message(which));
  const float alpha = p.Float(1), beta = p.Float(2);
  const NnLayerLabel label = spec;
  std::function<float(float)> f;
  switch (which) {
    case 5:  // linear
      f = [=](float x) { return alpha * x + beta; };
      break;
    case 10:  // ReLU
      f = [](float x) { return x > 0 ? x : 0.f; };
      break;
    case 15:  // leakyReLU
      f = [=](float x) { return x >= 0 ? x : alpha * x; };
      break;
    case 20:  // thresholdedReLU
      f = [=](float x) { return x >= alpha ? x : 0.f; };
      break;
    case 30:  // tanh
      f = [](float x) { return std::tanh(x); };
      break;
    case 31:  // scaledTanh
      f = [=](float x) { return alpha * std::tanh(beta * x); };
      break;
    case 40:  // sigmoid
      f = [](float x) { return 1.f / (1.f + std::exp(-x)); };
      break;
    case 41:  // sigmoidHard
      f = [=](float x) { return std::min(std::max(alpha * x + beta, 0.f), 1.f); };
      break;
    case 50:  // ELU
      f = [=](float x) { return x >= 0 ? x : alpha * std::expm1(x); };
      break;
    case 60:  // softsign
      f = [](float x) { return x / (1.f + std::fabs(x)); };
      break;
    case 70:  // softplus, stable for large |x|
      f = [](float x) { return std::max(x, 0.f) + std::log1p(std::exp(-std::fabs(x))); };
      break;
    case 25: {  // PReLU: per-channel slope
      ASSIGN_OR_RETURN(const Tensor* a, spec.Weight("PReLU.alpha"));
      return NnKernel([label, a = *a](const std::vector<const Tensor*>& in) {
        return PerChannel(*in[0], label, {&a}, [](float x, const float* v) { return x >= 0 ? x : v[0] * x; });
      });
    }
    case 71: {  // parametricSoftplus: alpha_c * log(1 + exp(beta_c * x))
      ASSIGN_OR_RETURN(const Tensor* a, spec.Weight("parametricSoftplus.alpha"));
      ASSIGN_OR_RETURN(const Tensor* b, spec.Weight("parametricSoftplus.beta"));
      return NnKernel([label, a = *a, b = *b](const std::vector<const Tensor*>& in) {
        return PerChannel(*in[0], label, {&a, &b}, [](float x, const float* v) {
          const float t = v[1] * x;
          return v[0] * (std::max(t, 0.f) + std::log1p(std::exp(-std::fabs(t))));
        });
      });
    }
    default:
      return spec.Unimplemented(absl::StrCat("nonlinearity field ", which));
  }
  return NnKernel([label, f](const std::vector<const Tensor*>& in) { return Map(*in[0], label, f); });
}

absl::StatusOr<NnKernel> BuildUnary(const NnLayerSpec& spec) {
  const int op = static_cast<int>(spec.params.Varint(1));
  const float alpha = spec.params.Float(2);
  float epsilon = spec.params.Float(3);
  if (epsilon == 0) epsilon = 1e-6f;  // "defaults to 1e-6 if not set or set to 0"
  const float shift = spec.params.Float(4);
  float scale = spec.params.Float(5);
  if (scale == 0) scale = 1;  // "defaults to 1.0 if not set or set to 0"
  std::function<float(float)> f;
  switch (op) {
    case 0:
      f = [](float x) { return std::sqrt(x); };
      break;
    case 1:
      f = [=](float x) { return 1.f / std::sqrt(x + epsilon); };
      break;
    case 2:
      f = [=](float x) { return 1.f / (x + epsilon); };
      break;
    case 3:
      f = [=](float x) { return std::pow(x, alpha); };
      break;
    case 4:
      f = [](float x) { return std::exp(x); };
      break;
    case 5:
      f = [](float x) { return std::log(x); };
      break;
    case 6:
      f = [](float x) { return std::fabs(x); };
      break;
    case 7:
      f = [=](float x) { return std::max(alpha, x); };
      break;
    default:
      return spec.Unimplemented(absl::StrCat("unary operation ", op));
  }
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) {
    return Map(*in[0], label, [&](float x) { return f(scale * x + shift); });
  });
}

absl::StatusOr<NnKernel> BuildAdd(const NnLayerSpec& spec) {
  return MultiInput(spec, std::plus<float>(), /*has_alpha=*/true);
}
absl::StatusOr<NnKernel> BuildMultiply(const NnLayerSpec& spec) {
  return MultiInput(spec, std::multiplies<float>(), /*has_alpha=*/true);
}
absl::StatusOr<NnKernel> BuildAverage(const NnLayerSpec& spec) {
  return MultiInput(spec, std::plus<float>(), /*has_alpha=*/false, /*average=*/true);
}
absl::StatusOr<NnKernel> BuildMax(const NnLayerSpec& spec) {
  return MultiInput(
      spec, [](float a, float b) { return std::max(a, b); }, /*has_alpha=*/false);
}
absl::StatusOr<NnKernel> BuildMin(const NnLayerSpec& spec) {
  return MultiInput(
      spec, [](float a, float b) { return std::min(a, b); }, /*has_alpha=*/false);
}
absl::StatusOr<NnKernel> BuildMaxBroadcastable(const NnLayerSpec& spec) {
  return TwoInputs(spec, [](float a, float b) { return std::max(a, b); });
}
absl::StatusOr<NnKernel> BuildMinBroadcastable(const NnLayerSpec& spec) {
  return TwoInputs(spec, [](float a, float b) { return std::min(a, b); });
}
absl::StatusOr<NnKernel> BuildAddBroadcastable(const NnLayerSpec& spec) { return TwoInputs(spec, std::plus<float>()); }
absl::StatusOr<NnKernel> BuildMultiplyBroadcastable(const NnLayerSpec& spec) {
  return TwoInputs(spec, std::multiplies<float>());
}
absl::StatusOr<NnKernel> BuildSubtractBroadcastable(const NnLayerSpec& spec) {
  return TwoInputs(spec, std::minus<float>());
}
absl::StatusOr<NnKernel> BuildDivideBroadcastable(const NnLayerSpec& spec) {
  return TwoInputs(spec, std::divides<float>());
}
absl::StatusOr<NnKernel> BuildPowBroadcastable(const NnLayerSpec& spec) {
  return TwoInputs(spec, [](float a, float b) { return std::pow(a, b); });
}
// floorDiv and mod round toward negative infinity (Python's // and %), as
// MIL's floor_div and mod, which coremltools converts to these layers.
absl::StatusOr<NnKernel> BuildFloorDivBroadcastable(const NnLayerSpec& spec) {
  return TwoInputs(spec, [](float a, float b) { return std::floor(a / b); });
}
absl::StatusOr<NnKernel> BuildModBroadcastable(const NnLayerSpec& spec) {
  return TwoInputs(spec, [](float a, float b) { return a - std::floor(a / b) * b; });
}

// The parameterless unary ND layers, by layer type.
absl::StatusOr<NnKernel> BuildUnaryND(const NnLayerSpec& spec) {
  static const auto* functions = new std::map<std::string, float (*)(float)>{
      {"ceil", [](float x) { return std::ceil(x); }},
      {"floor", [](float x) { return std::floor(x); }},
      {"sign", [](float x) { return x > 0 ? 1.f : (x < 0 ? -1.f : 0.f); }},
      // Halves to even, as numpy.round and MIL's round (the op converted to it).
      {"round", [](float x) { return std::nearbyint(x); }},
      {"exp2", [](float x) { return std::exp2(x); }},
      {"sin", [](float x) { return std::sin(x); }},
      {"cos", [](float x) { return std::cos(x); }},
      {"tan", [](float x) { return std::tan(x); }},
      {"asin", [](float x) { return std::asin(x); }},
      {"acos", [](float x) { return std::acos(x); }},
      {"atan", [](float x) { return std::atan(x); }},
      {"sinh", [](float x) { return std::sinh(x); }},
      {"cosh", [](float x) { return std::cosh(x); }},
      {"tanh", [](float x) { return std::tanh(x); }},
      {"asinh", [](float x) { return std::asinh(x); }},
      {"acosh", [](float x) { return std::acosh(x); }},
      {"atanh", [](float x) { return std::atanh(x); }},
      {"erf", [](float x) { return std::erf(x); }},
      {"logicalNot", [](float x) { return x == 0 ? 1.f : 0.f; }},
  };
  auto it = functions->find(spec.type);
  if (it == functions->end()) return spec.Unimplemented("this unary layer");
  float (*f)(float) = it->second;
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) { return Map(*in[0], label, f); });
}

// gelu: EXACT x * Phi(x), TANH_APPROXIMATION and SIGMOID_APPROXIMATION
// (x * sigmoid(1.702 x)).
absl::StatusOr<NnKernel> BuildGelu(const NnLayerSpec& spec) {
  const int mode = static_cast<int>(spec.params.Varint(1));
  std::function<float(float)> f;
  switch (mode) {
    case 0:
      f = [](float x) { return static_cast<float>(0.5 * x * (1 + std::erf(x / std::sqrt(2.0)))); };
      break;
    case 1:
      f = [](float x) {
        const double k = std::sqrt(2 / M_PI);
        return static_cast<float>(0.5 * x * (1 + std::tanh(k * (x + 0.044715 * double{x} * x * x))));
      };
      break;
    case 2:
      f = [](float x) { return static_cast<float>(x / (1 + std::exp(-1.702 * x))); };
      break;
    default:
      return spec.Invalid(absl::StrCat("unknown gelu mode ", mode));
  }
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) { return Map(*in[0], label, f); });
}

// Comparisons: two inputs broadcast, or one input against the scalar alpha
// (field 1 for equal / notEqual, 2 for the orderings).
absl::StatusOr<NnKernel> BuildComparison(const NnLayerSpec& spec) {
  static const auto* comparisons = new std::map<std::string, std::pair<int, bool (*)(float, float)>>{
      {"equal", {1, [](float a, float b) { return a == b; }}},
      {"notEqual", {1, [](float a, float b) { return a != b; }}},
      {"lessThan", {2, [](float a, float b) { return a < b; }}},
      {"lessEqual", {2, [](float a, float b) { return a <= b; }}},
      {"greaterThan", {2, [](float a, float b) { return a > b; }}},
      {"greaterEqual", {2, [](float a, float b) { return a >= b; }}},
  };
  auto it = comparisons->find(spec.type);
  if (it == comparisons->end()) return spec.Unimplemented("this comparison");
  const float alpha = spec.params.Float(it->second.first);
  bool (*cmp)(float, float) = it->second.second;
  const Binary op = [cmp](float a, float b) { return cmp(a, b) ? 1.f : 0.f; };
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) -> absl::StatusOr<std::vector<Tensor>> {
    if (in.size() == 1) return Map(*in[0], label, [&](float v) { return op(v, alpha); });
    ASSIGN_OR_RETURN(Tensor y, Fold(in, label, op));
    return Outputs(std::move(y));
  });
}

// clampedReLU: min(beta, x) for x >= 0, min(beta, alpha x) below.
absl::StatusOr<NnKernel> BuildClampedRelu(const NnLayerSpec& spec) {
  const float alpha = spec.params.Float(1), beta = spec.params.Float(2);
  const NnLayerLabel label = spec;
  return NnKernel([=](const std::vector<const Tensor*>& in) {
    return Map(*in[0], label, [=](float x) { return std::min(beta, x >= 0 ? x : alpha * x); });
  });
}

absl::StatusOr<NnKernel> BuildLogical(const NnLayerSpec& spec) {
  Binary op;
  if (spec.type == "logicalAnd") {
    op = [](float a, float b) { return a != 0 && b != 0 ? 1.f : 0.f; };
  } else if (spec.type == "logicalOr") {
    op = [](float a, float b) { return a != 0 || b != 0 ? 1.f : 0.f; };
  } else if (spec.type == "logicalXor") {
    op = [](float a, float b) { return (a != 0) != (b != 0) ? 1.f : 0.f; };
  } else {
    return spec.Unimplemented("this logical layer");
  }
  return TwoInputs(spec, op);
}

}  // namespace coremlz::execute
