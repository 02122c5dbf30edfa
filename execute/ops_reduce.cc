// reduce_* ops (iOS15 reduction.py): axes optional (all dims when absent),
// keep_dims default false; reduce_argmax/argmin take one axis and return
// int32 indices, the first one on ties as numpy does. Also cumsum.
#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/op_registry.h"
#include "execute/reduction.h"

namespace coremlz::execute {
namespace {

enum class Reducer { kSum, kMean, kMax, kMin, kProd, kL1, kL2, kLogSum, kLogSumExp, kSumSquare };

absl::StatusOr<std::vector<Tensor>> Reduce(const OpContext& ctx, Reducer kind) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  if (x->dtype() != DType::kFloat32 && x->dtype() != DType::kInt32) return ctx.Invalid("x must be numeric");
  std::vector<int64_t> all(x->rank());
  for (int64_t d = 0; d < x->rank(); ++d) all[d] = d;
  ASSIGN_OR_RETURN(std::vector<int64_t> axes, ctx.Ints("axes", all));
  ASSIGN_OR_RETURN(bool keep, ctx.Bool("keep_dims", false));
  auto plan = PlanReduction(x->shape(), axes);
  if (!plan.ok()) return ctx.Invalid(plan.status().message());
  const int64_t groups = static_cast<int64_t>(plan->group_base.size());
  const int64_t members = static_cast<int64_t>(plan->member_offset.size());
  if (members == 0 && (kind == Reducer::kMax || kind == Reducer::kMin)) return ctx.Invalid("reducing an empty dim");
  std::vector<double> result(groups);
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t base = plan->group_base[g];
    double acc = kind == Reducer::kProd ? 1.0
                 : kind == Reducer::kMax ? -std::numeric_limits<double>::infinity()
                 : kind == Reducer::kMin ? std::numeric_limits<double>::infinity()
                                         : 0.0;
    double m = 0;
    if (kind == Reducer::kLogSumExp) {
      m = -std::numeric_limits<double>::infinity();
      for (int64_t off : plan->member_offset) m = std::max(m, x->AsDouble(base + off));
      if (!std::isfinite(m)) m = 0;
    }
    for (int64_t off : plan->member_offset) {
      const double v = x->is_float() ? x->floats()[base + off] : x->ints()[base + off];
      switch (kind) {
        case Reducer::kSum: case Reducer::kMean: case Reducer::kLogSum: acc += v; break;
        case Reducer::kMax: acc = std::max(acc, v); break;
        case Reducer::kMin: acc = std::min(acc, v); break;
        case Reducer::kProd: acc *= v; break;
        case Reducer::kL1: acc += std::fabs(v); break;
        case Reducer::kL2: case Reducer::kSumSquare: acc += v * v; break;
        case Reducer::kLogSumExp: acc += std::exp(v - m); break;
      }
    }
    if (kind == Reducer::kMean) acc /= static_cast<double>(members);
    if (kind == Reducer::kL2) acc = std::sqrt(acc);
    if (kind == Reducer::kLogSum) acc = std::log(acc);
    if (kind == Reducer::kLogSumExp) acc = std::log(acc) + m;
    result[g] = acc;
  }
  Shape shape = keep ? plan->kept_shape : plan->dropped_shape;
  if (x->is_float() || kind == Reducer::kMean || kind == Reducer::kL2 || kind == Reducer::kLogSum ||
      kind == Reducer::kLogSumExp) {
    if (!x->is_float()) return ctx.Invalid("this reduction needs floating point x");
    std::vector<float> out(result.begin(), result.end());
    return Outputs(Tensor::Float(std::move(shape), std::move(out)));
  }
  std::vector<int32_t> out(groups);
  for (int64_t g = 0; g < groups; ++g) out[g] = static_cast<int32_t>(result[g]);
  return Outputs(Tensor::Int(std::move(shape), std::move(out)));
}

absl::StatusOr<std::vector<Tensor>> ArgReduce(const OpContext& ctx, bool is_max) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  if (x->dtype() != DType::kFloat32 && x->dtype() != DType::kInt32) return ctx.Invalid("x must be numeric");
  ASSIGN_OR_RETURN(int64_t axis, ctx.Int("axis", -1));
  ASSIGN_OR_RETURN(bool keep, ctx.Bool("keep_dims", false));
  auto plan = PlanReduction(x->shape(), {axis});
  if (!plan.ok()) return ctx.Invalid(plan.status().message());
  if (plan->member_offset.empty()) return ctx.Invalid("reducing an empty dim");
  std::vector<int32_t> out(plan->group_base.size());
  for (size_t g = 0; g < out.size(); ++g) {
    int32_t best_i = 0;
    double best = x->AsDouble(plan->group_base[g]);
    for (size_t k = 1; k < plan->member_offset.size(); ++k) {
      const double v = x->AsDouble(plan->group_base[g] + plan->member_offset[k]);
      if (is_max ? v > best : v < best) best = v, best_i = static_cast<int32_t>(k);
    }
    out[g] = best_i;
  }
  return Outputs(Tensor::Int(keep ? plan->kept_shape : plan->dropped_shape, std::move(out)));
}

#define REDUCE(NAME, KIND) \
  absl::StatusOr<std::vector<Tensor>> NAME(const OpContext& ctx) { return Reduce(ctx, Reducer::KIND); }
REDUCE(ReduceSum, kSum)
REDUCE(ReduceMean, kMean)
REDUCE(ReduceMax, kMax)
REDUCE(ReduceMin, kMin)
REDUCE(ReduceProd, kProd)
REDUCE(ReduceL1, kL1)
REDUCE(ReduceL2, kL2)
REDUCE(ReduceLogSum, kLogSum)
REDUCE(ReduceLogSumExp, kLogSumExp)
REDUCE(ReduceSumSquare, kSumSquare)
absl::StatusOr<std::vector<Tensor>> ReduceArgmax(const OpContext& ctx) { return ArgReduce(ctx, true); }
absl::StatusOr<std::vector<Tensor>> ReduceArgmin(const OpContext& ctx) { return ArgReduce(ctx, false); }

// cumsum(x, axis = 0, exclusive = false, reverse = false).
absl::StatusOr<std::vector<Tensor>> Cumsum(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  if (!x->is_float() && x->dtype() != DType::kInt32) return ctx.Invalid("x must be numeric");
  ASSIGN_OR_RETURN(int64_t axis_in, ctx.Int("axis", 0));
  ASSIGN_OR_RETURN(bool exclusive, ctx.Bool("exclusive", false));
  ASSIGN_OR_RETURN(bool reverse, ctx.Bool("reverse", false));
  auto plan = PlanReduction(x->shape(), {axis_in});
  if (!plan.ok()) return ctx.Invalid(plan.status().message());
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(x->dtype(), x->shape()));
  const int64_t n = static_cast<int64_t>(plan->member_offset.size());
  for (int64_t base : plan->group_base) {
    double acc = 0;
    for (int64_t s = 0; s < n; ++s) {
      const int64_t off = base + plan->member_offset[reverse ? n - 1 - s : s];
      const double v = x->AsDouble(off);
      if (!exclusive) acc += v;
      if (x->is_float()) out.mutable_floats()[off] = static_cast<float>(acc);
      else out.mutable_ints()[off] = static_cast<int32_t>(acc);
      if (exclusive) acc += v;
    }
  }
  return Outputs(std::move(out));
}

}  // namespace

void RegisterReduceOps(OpRegistry* r) {
  r->Register("reduce_sum", ReduceSum);
  r->Register("reduce_mean", ReduceMean);
  r->Register("reduce_max", ReduceMax);
  r->Register("reduce_min", ReduceMin);
  r->Register("reduce_prod", ReduceProd);
  r->Register("reduce_l1_norm", ReduceL1);
  r->Register("reduce_l2_norm", ReduceL2);
  r->Register("reduce_log_sum", ReduceLogSum);
  r->Register("reduce_log_sum_exp", ReduceLogSumExp);
  r->Register("reduce_sum_square", ReduceSumSquare);
  r->Register("reduce_argmax", ReduceArgmax);
  r->Register("reduce_argmin", ReduceArgmin);
  r->Register("cumsum", Cumsum);
}

}  // namespace coremlz::execute
