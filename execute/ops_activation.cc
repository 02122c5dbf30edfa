// Unary elementwise ops and activations (iOS15 activation.py and
// elementwise_unary.py, iOS17 versions where they differ only in accepted
// dtypes), softmax, cast and identity. All compute in float32.
#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/op_registry.h"

namespace coremlz::execute {
namespace {

template <typename F>
absl::StatusOr<std::vector<Tensor>> MapFloat(const OpContext& ctx, F f) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  if (!x->is_float()) return ctx.Invalid(absl::StrCat("x must be floating point, not ", DTypeName(x->dtype())));
  std::vector<float> out(x->size());
  const float* in = x->floats().data();
  for (int64_t i = 0; i < x->size(); ++i) out[i] = f(in[i]);
  return Outputs(Tensor::Float(x->shape(), std::move(out)));
}

// Ops also defined on int32 (abs, sign, square, relu's int variant is not).
template <typename F, typename G>
absl::StatusOr<std::vector<Tensor>> MapFloatOrInt(const OpContext& ctx, F f, G g) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  if (x->is_float()) return MapFloat(ctx, f);
  if (x->dtype() != DType::kInt32) return ctx.Invalid("x must be numeric");
  std::vector<int32_t> out(x->size());
  for (int64_t i = 0; i < x->size(); ++i) out[i] = g(x->ints()[i]);
  return Outputs(Tensor::Int(x->shape(), std::move(out)));
}

#define UNARY(NAME, EXPR) \
  absl::StatusOr<std::vector<Tensor>> NAME(const OpContext& ctx) { return MapFloat(ctx, [](float x) -> float { return EXPR; }); }

UNARY(Relu, x > 0 ? x : 0.0f)
UNARY(Relu6, std::min(std::max(x, 0.0f), 6.0f))
UNARY(Sigmoid, 1.0f / (1.0f + std::exp(-x)))
UNARY(Tanh, std::tanh(x))
UNARY(Silu, x / (1.0f + std::exp(-x)))
UNARY(Erf, std::erf(x))
UNARY(Exp, std::exp(x))
UNARY(Exp2, std::exp2(x))
UNARY(Sqrt, std::sqrt(x))
UNARY(Sin, std::sin(x))
UNARY(Cos, std::cos(x))
UNARY(Tan, std::tan(x))
UNARY(Asin, std::asin(x))
UNARY(Acos, std::acos(x))
UNARY(Atan, std::atan(x))
UNARY(Sinh, std::sinh(x))
UNARY(Cosh, std::cosh(x))
UNARY(Atanh, std::atanh(x))
UNARY(Floor, std::floor(x))
UNARY(Ceil, std::ceil(x))
// numpy.round: halves to even.
UNARY(Round, std::nearbyint(x))
UNARY(Softsign, x / (1.0f + std::fabs(x)))
UNARY(Softplus, std::log1p(std::exp(-std::fabs(x))) + std::max(x, 0.0f))

absl::StatusOr<std::vector<Tensor>> Abs(const OpContext& ctx) {
  return MapFloatOrInt(ctx, [](float x) { return std::fabs(x); }, [](int32_t x) { return x < 0 ? -x : x; });
}
absl::StatusOr<std::vector<Tensor>> Sign(const OpContext& ctx) {
  return MapFloatOrInt(
      ctx, [](float x) { return x > 0 ? 1.0f : (x < 0 ? -1.0f : 0.0f); },
      [](int32_t x) { return x > 0 ? 1 : (x < 0 ? -1 : 0); });
}
absl::StatusOr<std::vector<Tensor>> Square(const OpContext& ctx) {
  return MapFloatOrInt(ctx, [](float x) { return x * x; }, [](int32_t x) { return x * x; });
}

// Ops with an epsilon added before the function (defaults from the op
// definitions: log 1e-45, rsqrt 1e-12, inverse 1e-4).
absl::StatusOr<std::vector<Tensor>> Log(const OpContext& ctx) {
  ASSIGN_OR_RETURN(double eps, ctx.Float("epsilon", 1e-45));
  const float e = static_cast<float>(eps);
  return MapFloat(ctx, [e](float x) { return std::log(x + e); });
}
absl::StatusOr<std::vector<Tensor>> Rsqrt(const OpContext& ctx) {
  ASSIGN_OR_RETURN(double eps, ctx.Float("epsilon", 1e-12));
  const float e = static_cast<float>(eps);
  return MapFloat(ctx, [e](float x) { return 1.0f / std::sqrt(x + e); });
}
absl::StatusOr<std::vector<Tensor>> Inverse(const OpContext& ctx) {
  ASSIGN_OR_RETURN(double eps, ctx.Float("epsilon", 1e-4));
  const float e = static_cast<float>(eps);
  return MapFloat(ctx, [e](float x) { return 1.0f / (x + e); });
}

absl::StatusOr<std::vector<Tensor>> Clip(const OpContext& ctx) {
  ASSIGN_OR_RETURN(double alpha, ctx.Float("alpha", 0));
  ASSIGN_OR_RETURN(double beta, ctx.Float("beta", 0));
  const float lo = static_cast<float>(alpha), hi = static_cast<float>(beta);
  return MapFloat(ctx, [lo, hi](float x) { return std::min(std::max(x, lo), hi); });
}

absl::StatusOr<std::vector<Tensor>> LeakyRelu(const OpContext& ctx) {
  ASSIGN_OR_RETURN(double alpha, ctx.Float("alpha", 0.01));
  const float a = static_cast<float>(alpha);
  return MapFloat(ctx, [a](float x) { return x >= 0 ? x : a * x; });
}

absl::StatusOr<std::vector<Tensor>> Elu(const OpContext& ctx) {
  ASSIGN_OR_RETURN(double alpha, ctx.Float("alpha", 1.0));
  const float a = static_cast<float>(alpha);
  return MapFloat(ctx, [a](float x) { return x > 0 ? x : a * (std::exp(x) - 1.0f); });
}

absl::StatusOr<std::vector<Tensor>> SigmoidHard(const OpContext& ctx) {
  ASSIGN_OR_RETURN(double alpha, ctx.Float("alpha", 0.2));
  ASSIGN_OR_RETURN(double beta, ctx.Float("beta", 0.5));
  const float a = static_cast<float>(alpha), b = static_cast<float>(beta);
  return MapFloat(ctx, [a, b](float x) { return std::min(std::max(a * x + b, 0.0f), 1.0f); });
}

absl::StatusOr<std::vector<Tensor>> ScaledTanh(const OpContext& ctx) {
  ASSIGN_OR_RETURN(double alpha, ctx.Float("alpha", 1.0));
  ASSIGN_OR_RETURN(double beta, ctx.Float("beta", 1.0));
  const float a = static_cast<float>(alpha), b = static_cast<float>(beta);
  return MapFloat(ctx, [a, b](float x) { return a * std::tanh(b * x); });
}

absl::StatusOr<std::vector<Tensor>> ClampedRelu(const OpContext& ctx) {
  ASSIGN_OR_RETURN(double alpha, ctx.Float("alpha", 0));
  ASSIGN_OR_RETURN(double beta, ctx.Float("beta", 0));
  const float a = static_cast<float>(alpha), b = static_cast<float>(beta);
  return MapFloat(ctx, [a, b](float x) { return std::min(x >= 0 ? x : a * x, b); });
}

absl::StatusOr<std::vector<Tensor>> Threshold(const OpContext& ctx) {
  ASSIGN_OR_RETURN(double alpha, ctx.Float("alpha", 0));
  const float a = static_cast<float>(alpha);
  return MapFloat(ctx, [a](float x) { return std::max(x, a); });
}

absl::StatusOr<std::vector<Tensor>> Gelu(const OpContext& ctx) {
  ASSIGN_OR_RETURN(std::string mode, ctx.String("mode", "EXACT"));
  if (mode == "EXACT") {
    return MapFloat(ctx, [](float x) { return 0.5f * x * (1.0f + std::erf(x / std::sqrt(2.0f))); });
  }
  if (mode == "TANH_APPROXIMATION") {
    return MapFloat(ctx, [](float x) {
      const float a = std::sqrt(2.0f / static_cast<float>(M_PI)) * (x + 0.044715f * x * x * x);
      return 0.5f * x * (1.0f + std::tanh(a));
    });
  }
  if (mode == "SIGMOID_APPROXIMATION") {
    return MapFloat(ctx, [](float x) { return x / (1.0f + std::exp(-1.702f * x)); });
  }
  return ctx.Invalid(absl::StrCat("unknown mode '", mode, "'"));
}

// Softmax along `axis` (default -1), max-subtracted for stability.
absl::StatusOr<std::vector<Tensor>> Softmax(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  if (!x->is_float()) return ctx.Invalid("x must be floating point");
  ASSIGN_OR_RETURN(int64_t axis_in, ctx.Int("axis", -1));
  auto axis = NormalizeAxis(axis_in, x->rank());
  if (!axis.ok()) return ctx.Invalid(axis.status().message());
  const int64_t n = x->dim(*axis);
  int64_t inner = 1;
  for (int64_t d = *axis + 1; d < x->rank(); ++d) inner *= x->dim(d);
  const int64_t outer = n == 0 || inner == 0 ? 0 : x->size() / (n * inner);
  std::vector<float> out(x->size());
  const float* in = x->floats().data();
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t base = o * n * inner + i;
      float m = -INFINITY;
      for (int64_t k = 0; k < n; ++k) m = std::max(m, in[base + k * inner]);
      double sum = 0;
      for (int64_t k = 0; k < n; ++k) {
        const float e = std::exp(in[base + k * inner] - m);
        out[base + k * inner] = e;
        sum += e;
      }
      const float inv = static_cast<float>(1.0 / sum);
      for (int64_t k = 0; k < n; ++k) out[base + k * inner] *= inv;
    }
  }
  return Outputs(Tensor::Float(x->shape(), std::move(out)));
}

// prelu(x, alpha): one slope per channel (axis 1 of [B, C, ...]).
absl::StatusOr<std::vector<Tensor>> Prelu(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(const Tensor* alpha, ctx.Input("alpha"));
  if (!x->is_float() || !alpha->is_float() || x->rank() < 3) return ctx.Invalid("x must be floating point [B, C, ...]");
  const int64_t c = x->dim(1);
  if (alpha->size() != c) return ctx.Invalid("alpha must have one value per channel");
  int64_t inner = 1;
  for (int64_t d = 2; d < x->rank(); ++d) inner *= x->dim(d);
  std::vector<float> out(x->size());
  for (int64_t i = 0; i < x->size(); ++i) {
    const float v = x->floats()[i];
    out[i] = v >= 0 ? v : alpha->floats()[(i / std::max<int64_t>(inner, 1)) % c] * v;
  }
  return Outputs(Tensor::Float(x->shape(), std::move(out)));
}

// linear_activation(x, alpha, beta): alpha * x + beta.
absl::StatusOr<std::vector<Tensor>> LinearActivation(const OpContext& ctx) {
  ASSIGN_OR_RETURN(double alpha, ctx.Float("alpha", 1.0));
  ASSIGN_OR_RETURN(double beta, ctx.Float("beta", 0.0));
  const float a = static_cast<float>(alpha), b = static_cast<float>(beta);
  return MapFloat(ctx, [a, b](float x) { return a * x + b; });
}

// thresholded_relu(x, alpha): x where x >= alpha, else 0.
absl::StatusOr<std::vector<Tensor>> ThresholdedRelu(const OpContext& ctx) {
  ASSIGN_OR_RETURN(double alpha, ctx.Float("alpha", 1.0));
  const float a = static_cast<float>(alpha);
  return MapFloat(ctx, [a](float x) { return x >= a ? x : 0.0f; });
}

// softplus_parametric(x, alpha, beta): alpha_c * log(1 + exp(beta_c * x))
// with one alpha and beta per channel (axis 1 of [B, C, ...]); computed
// as max(t, 0) + log1p(exp(-|t|)) so that large |t| neither overflows nor
// loses the linear part.
absl::StatusOr<std::vector<Tensor>> SoftplusParametric(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(const Tensor* alpha, ctx.Input("alpha"));
  ASSIGN_OR_RETURN(const Tensor* beta, ctx.Input("beta"));
  if (!x->is_float() || !alpha->is_float() || !beta->is_float() || x->rank() < 3) {
    return ctx.Invalid("x must be floating point [B, C, ...], alpha and beta floating point");
  }
  const int64_t c = x->dim(1);
  if (alpha->size() != c || beta->size() != c) return ctx.Invalid("alpha and beta must have one value per channel");
  int64_t inner = 1;
  for (int64_t d = 2; d < x->rank(); ++d) inner *= x->dim(d);
  std::vector<float> out(x->size());
  for (int64_t i = 0; i < x->size(); ++i) {
    const int64_t ch = (i / std::max<int64_t>(inner, 1)) % c;
    const float t = beta->floats()[ch] * x->floats()[i];
    out[i] = alpha->floats()[ch] * (std::max(t, 0.0f) + std::log1p(std::exp(-std::fabs(t))));
  }
  return Outputs(Tensor::Float(x->shape(), std::move(out)));
}

absl::StatusOr<std::vector<Tensor>> Identity(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  return Outputs(*x);
}

absl::StatusOr<std::vector<Tensor>> LogicalNot(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  if (x->dtype() != DType::kBool) return ctx.Invalid("x must be bool");
  std::vector<int32_t> out(x->size());
  for (int64_t i = 0; i < x->size(); ++i) out[i] = x->ints()[i] == 0;
  return Outputs(Tensor::Bool(x->shape(), std::move(out)));
}

// cast(x, dtype). Float targets stay float32 (the executor computes in
// float32; rounding to fp16 here would make the result depend on where a
// converter put its casts). Float -> integer truncates toward zero like
// numpy's astype; narrow integer targets wrap.
absl::StatusOr<std::vector<Tensor>> Cast(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(std::string dtype, ctx.String("dtype", ""));
  if (x->dtype() == DType::kString) return ctx.Invalid("cannot cast strings");
  const int64_t n = x->size();
  if (dtype == "fp16" || dtype == "fp32" || dtype == "fp64" || dtype == "bf16") {
    if (x->is_float()) return Outputs(*x);
    std::vector<float> out(n);
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(x->ints()[i]);
    return Outputs(Tensor::Float(x->shape(), std::move(out)));
  }
  if (dtype == "bool") {
    std::vector<int32_t> out(n);
    for (int64_t i = 0; i < n; ++i) out[i] = x->AsDouble(i) != 0;
    return Outputs(Tensor::Bool(x->shape(), std::move(out)));
  }
  if (dtype == "int32" || dtype == "int64" || dtype == "int16" || dtype == "int8" || dtype == "uint8" ||
      dtype == "uint16" || dtype == "uint32") {
    std::vector<int32_t> out(n);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t v = x->is_float() ? static_cast<int64_t>(std::trunc(x->floats()[i])) : x->ints()[i];
      if (dtype == "int8") out[i] = static_cast<int8_t>(v);
      else if (dtype == "uint8") out[i] = static_cast<uint8_t>(v);
      else if (dtype == "int16") out[i] = static_cast<int16_t>(v);
      else if (dtype == "uint16") out[i] = static_cast<uint16_t>(v);
      else out[i] = static_cast<int32_t>(v);
    }
    return Outputs(Tensor::Int(x->shape(), std::move(out)));
  }
  return ctx.Invalid(absl::StrCat("unknown dtype '", dtype, "'"));
}

}  // namespace

void RegisterActivationOps(OpRegistry* r) {
  r->Register("relu", Relu);
  r->Register("relu6", Relu6);
  r->Register("sigmoid", Sigmoid);
  r->Register("tanh", Tanh);
  r->Register("silu", Silu);
  r->Register("erf", Erf);
  r->Register("exp", Exp);
  r->Register("exp2", Exp2);
  r->Register("sqrt", Sqrt);
  r->Register("sin", Sin);
  r->Register("cos", Cos);
  r->Register("tan", Tan);
  r->Register("asin", Asin);
  r->Register("acos", Acos);
  r->Register("atan", Atan);
  r->Register("sinh", Sinh);
  r->Register("cosh", Cosh);
  r->Register("atanh", Atanh);
  r->Register("floor", Floor);
  r->Register("ceil", Ceil);
  r->Register("round", Round);
  r->Register("softsign", Softsign);
  r->Register("softplus", Softplus);
  r->Register("abs", Abs);
  r->Register("sign", Sign);
  r->Register("square", Square);
  r->Register("log", Log);
  r->Register("rsqrt", Rsqrt);
  r->Register("inverse", Inverse);
  r->Register("clip", Clip);
  r->Register("leaky_relu", LeakyRelu);
  r->Register("elu", Elu);
  r->Register("sigmoid_hard", SigmoidHard);
  r->Register("scaled_tanh", ScaledTanh);
  r->Register("clamped_relu", ClampedRelu);
  r->Register("threshold", Threshold);
  r->Register("gelu", Gelu);
  r->Register("softmax", Softmax);
  r->Register("identity", Identity);
  r->Register("prelu", Prelu);
  r->Register("linear_activation", LinearActivation);
  r->Register("thresholded_relu", ThresholdedRelu);
  r->Register("softplus_parametric", SoftplusParametric);
  r->Register("logical_not", LogicalNot);
  r->Register("cast", Cast);
}

}  // namespace coremlz::execute
