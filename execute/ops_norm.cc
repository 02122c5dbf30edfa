// batch_norm, instance_norm, layer_norm (iOS15 normalization.py), all with
// epsilon default 1e-5, l2_norm and local_response_norm; statistics in
// double, biased variance.
#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/op_registry.h"
#include "execute/reduction.h"

namespace coremlz::execute {
namespace {

// Normalises each group of `plan`; gamma/beta are indexed by member (may be
// null) or, when `per_group_channel` is set, by the channel of the group.
void Normalize(const Tensor& x, const Reduction& plan, const float* gamma, const float* beta, double eps,
               float* out) {
  const double n = static_cast<double>(plan.member_offset.size());
  if (n == 0) return;
  for (size_t g = 0; g < plan.group_base.size(); ++g) {
    const float* base = x.floats().data() + plan.group_base[g];
    double sum = 0;
    for (int64_t off : plan.member_offset) sum += base[off];
    const double mean = sum / n;
    double sq = 0;
    for (int64_t off : plan.member_offset) sq += (base[off] - mean) * (base[off] - mean);
    const double inv = 1.0 / std::sqrt(sq / n + eps);
    float* o = out + plan.group_base[g];
    for (size_t k = 0; k < plan.member_offset.size(); ++k) {
      const int64_t off = plan.member_offset[k];
      double v = (base[off] - mean) * inv;
      if (gamma) v *= gamma[k];
      if (beta) v += beta[k];
      o[off] = static_cast<float>(v);
    }
  }
}

absl::StatusOr<std::vector<Tensor>> LayerNorm(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  if (!x->is_float()) return ctx.Invalid("x must be floating point");
  std::vector<int64_t> all(x->rank());
  for (int64_t d = 0; d < x->rank(); ++d) all[d] = d;
  ASSIGN_OR_RETURN(std::vector<int64_t> axes, ctx.Ints("axes", all));
  ASSIGN_OR_RETURN(double eps, ctx.Float("epsilon", 1e-5));
  auto plan = PlanReduction(x->shape(), axes);
  if (!plan.ok()) return ctx.Invalid(plan.status().message());
  const Tensor* gamma = ctx.Optional("gamma");
  const Tensor* beta = ctx.Optional("beta");
  const int64_t members = static_cast<int64_t>(plan->member_offset.size());
  for (const Tensor* t : {gamma, beta}) {
    if (t && (!t->is_float() || t->size() != members)) {
      return ctx.Invalid(absl::StrCat("gamma and beta must have shape x.shape[axes] (", members, " elements)"));
    }
  }
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kFloat32, x->shape()));
  Normalize(*x, *plan, gamma ? gamma->floats().data() : nullptr, beta ? beta->floats().data() : nullptr, eps,
            out.mutable_floats().data());
  return Outputs(std::move(out));
}

absl::StatusOr<std::vector<Tensor>> InstanceNorm(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  if (!x->is_float() || x->rank() < 3) return ctx.Invalid("x must be floating point [N, C, spatial...]");
  ASSIGN_OR_RETURN(double eps, ctx.Float("epsilon", 1e-5));
  const Tensor* gamma = ctx.Optional("gamma");
  const Tensor* beta = ctx.Optional("beta");
  const int64_t c = x->dim(1);
  for (const Tensor* t : {gamma, beta}) {
    if (t && (!t->is_float() || t->size() != c)) return ctx.Invalid("gamma and beta must have one value per channel");
  }
  std::vector<int64_t> axes;
  for (int64_t d = 2; d < x->rank(); ++d) axes.push_back(d);
  auto plan = PlanReduction(x->shape(), axes);
  if (!plan.ok()) return ctx.Invalid(plan.status().message());
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kFloat32, x->shape()));
  Normalize(*x, *plan, nullptr, nullptr, eps, out.mutable_floats().data());
  // Groups run over (n, c) in order, so the channel of a group is g % c.
  const int64_t spatial = static_cast<int64_t>(plan->member_offset.size());
  float* o = out.mutable_floats().data();
  for (int64_t i = 0; i < out.size(); ++i) {
    const int64_t ch = (i / std::max<int64_t>(spatial, 1)) % c;
    if (gamma) o[i] *= gamma->floats()[ch];
    if (beta) o[i] += beta->floats()[ch];
  }
  return Outputs(std::move(out));
}

// Inference batch norm with the given statistics, over axis 1.
absl::StatusOr<std::vector<Tensor>> BatchNorm(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(const Tensor* mean, ctx.Input("mean"));
  ASSIGN_OR_RETURN(const Tensor* var, ctx.Input("variance"));
  const Tensor* gamma = ctx.Optional("gamma");
  const Tensor* beta = ctx.Optional("beta");
  ASSIGN_OR_RETURN(double eps, ctx.Float("epsilon", 1e-5));
  if (!x->is_float() || x->rank() < 2) return ctx.Invalid("x must be floating point with rank >= 2");
  const int64_t c = x->dim(1);
  for (const Tensor* t : {mean, var, gamma, beta}) {
    if (t && (!t->is_float() || t->size() != c)) return ctx.Invalid("statistics must have one value per channel");
  }
  int64_t inner = 1;
  for (int64_t d = 2; d < x->rank(); ++d) inner *= x->dim(d);
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kFloat32, x->shape()));
  const float* in = x->floats().data();
  float* o = out.mutable_floats().data();
  for (int64_t i = 0; i < x->size(); ++i) {
    const int64_t ch = (i / std::max<int64_t>(inner, 1)) % c;
    double v = (in[i] - mean->floats()[ch]) / std::sqrt(static_cast<double>(var->floats()[ch]) + eps);
    if (gamma) v *= gamma->floats()[ch];
    if (beta) v += beta->floats()[ch];
    o[i] = static_cast<float>(v);
  }
  return Outputs(std::move(out));
}

// l2_norm(x, epsilon = 1e-6): x / sqrt(sum(x^2) + epsilon) over the last
// three dims, per leading (batch) index.
absl::StatusOr<std::vector<Tensor>> L2Norm(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  if (!x->is_float() || x->rank() < 3) return ctx.Invalid("x must be floating point with rank >= 3");
  ASSIGN_OR_RETURN(double eps, ctx.Float("epsilon", 1e-6));
  const int64_t group = x->dim(x->rank() - 3) * x->dim(x->rank() - 2) * x->dim(x->rank() - 1);
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kFloat32, x->shape()));
  for (int64_t g = 0; group > 0 && g < x->size() / group; ++g) {
    const float* in = x->floats().data() + g * group;
    double sq = 0;
    for (int64_t i = 0; i < group; ++i) sq += static_cast<double>(in[i]) * in[i];
    const double inv = 1.0 / std::sqrt(sq + eps);
    for (int64_t i = 0; i < group; ++i) out.mutable_floats()[g * group + i] = static_cast<float>(in[i] * inv);
  }
  return Outputs(std::move(out));
}

// local_response_norm(x, size, alpha = 1e-4, beta = 0.75, k = 1) over x of
// [n, C, *D] (rank 3 or 4): x / (k + alpha / size * sum of x_j^2)^beta, the
// sum over the channels j of the window around c. The window is PyTorch's
// (LocalResponseNorm): size / 2 channels before c and (size - 1) / 2 after,
// clipped to [0, C), which for the usual odd sizes is centred.
absl::StatusOr<std::vector<Tensor>> LocalResponseNorm(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(int64_t size, ctx.Int("size"));
  ASSIGN_OR_RETURN(double alpha, ctx.Float("alpha", 1e-4));
  ASSIGN_OR_RETURN(double beta, ctx.Float("beta", 0.75));
  ASSIGN_OR_RETURN(double k, ctx.Float("k", 1.0));
  if (!x->is_float() || x->rank() < 3 || x->rank() > 4) return ctx.Invalid("x must be floating point of rank 3 or 4");
  if (size < 1) return ctx.Invalid("size must be positive");
  const int64_t n = x->dim(0), c = x->dim(1), inner = x->size() / std::max<int64_t>(1, n * c);
  std::vector<float> out(x->size());
  const float* src = x->floats().data();
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t ch = 0; ch < c; ++ch) {
      const int64_t lo = std::max<int64_t>(0, ch - size / 2), hi = std::min<int64_t>(c - 1, ch + (size - 1) / 2);
      for (int64_t i = 0; i < inner; ++i) {
        double sum = 0;
        for (int64_t j = lo; j <= hi; ++j) {
          const double v = src[(b * c + j) * inner + i];
          sum += v * v;
        }
        const int64_t at = (b * c + ch) * inner + i;
        out[at] = static_cast<float>(src[at] / std::pow(k + alpha / size * sum, beta));
      }
    }
  }
  return Outputs(Tensor::Float(x->shape(), std::move(out)));
}

}  // namespace

void RegisterNormOps(OpRegistry* r) {
  r->Register("layer_norm", LayerNorm);
  r->Register("instance_norm", InstanceNorm);
  r->Register("batch_norm", BatchNorm);
  r->Register("l2_norm", L2Norm);
  r->Register("local_response_norm", LocalResponseNorm);
}

}  // namespace coremlz::execute
