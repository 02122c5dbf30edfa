// Elementwise binary ops with broadcasting (iOS15 elementwise_binary.py):
// arithmetic on fp32 or int32, comparisons to bool, logical ops, select.
#include <cmath>
#include <functional>

#include "absl/status/status.h"
#include "common/status_macros.h"
#include "execute/broadcast.h"
#include "execute/op_registry.h"

namespace coremlz::execute {
namespace {

template <typename T, typename R, typename F>
Tensor Apply(const Tensor& a, const Tensor& b, const Shape& out, absl::Span<const T> av,
             absl::Span<const T> bv, F f, DType out_type) {
  Tensor result = Tensor::Zeros(out_type, out);  // `out` passed BroadcastShapes' check
  R* o;
  if constexpr (std::is_same_v<R, float>) {
    o = result.mutable_floats().data();
  } else {
    o = result.mutable_ints().data();
  }
  ForEachBroadcast(a.shape(), b.shape(), out,
                   [&](int64_t i, int64_t ia, int64_t ib) { o[i] = static_cast<R>(f(av[ia], bv[ib])); });
  return result;
}

enum class Kind { kArithmetic, kCompare, kLogical };

// One binary op: `ff` on floats, `fi` on integers.
template <typename FF, typename FI>
absl::StatusOr<std::vector<Tensor>> Binary(const OpContext& ctx, Kind kind, FF ff, FI fi) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(const Tensor* y, ctx.Input("y"));
  if (x->dtype() == DType::kString || y->dtype() == DType::kString) return ctx.Invalid("string operands");
  auto out = BroadcastShapes(x->shape(), y->shape());
  if (!out.ok()) return ctx.Invalid(out.status().message());
  if (kind == Kind::kLogical) {
    if (x->dtype() != DType::kBool || y->dtype() != DType::kBool) return ctx.Invalid("operands must be bool");
    return Outputs(Apply<int32_t, int32_t>(*x, *y, *out, x->ints(), y->ints(), fi, DType::kBool));
  }
  if (x->is_float() != y->is_float()) return ctx.Invalid("operands have different types");
  const DType result_type = kind == Kind::kCompare ? DType::kBool : x->dtype();
  if (x->is_float()) {
    if (kind == Kind::kCompare) {
      return Outputs(Apply<float, int32_t>(*x, *y, *out, x->floats(), y->floats(), ff, result_type));
    }
    return Outputs(Apply<float, float>(*x, *y, *out, x->floats(), y->floats(), ff, result_type));
  }
  return Outputs(Apply<int32_t, int32_t>(*x, *y, *out, x->ints(), y->ints(), fi, result_type));
}

#define ARITH(NAME, EXPR_F, EXPR_I)                                                        \
  absl::StatusOr<std::vector<Tensor>> NAME(const OpContext& ctx) {                         \
    return Binary(                                                                         \
        ctx, Kind::kArithmetic, [](float a, float b) -> float { return EXPR_F; },          \
        [](int32_t a, int32_t b) -> int32_t { return EXPR_I; });                           \
  }
#define COMPARE(NAME, OP)                                                                  \
  absl::StatusOr<std::vector<Tensor>> NAME(const OpContext& ctx) {                         \
    return Binary(                                                                         \
        ctx, Kind::kCompare, [](float a, float b) -> int32_t { return a OP b; },           \
        [](int32_t a, int32_t b) -> int32_t { return a OP b; });                           \
  }
#define LOGICAL(NAME, EXPR)                                                                \
  absl::StatusOr<std::vector<Tensor>> NAME(const OpContext& ctx) {                         \
    return Binary(                                                                         \
        ctx, Kind::kLogical, [](float a, float b) -> float { return 0; },                  \
        [](int32_t a, int32_t b) -> int32_t { return EXPR; });                             \
  }

int32_t FloorDivInt(int32_t a, int32_t b) {
  if (b == 0) return 0;
  int32_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}
int32_t ModInt(int32_t a, int32_t b) {
  if (b == 0) return 0;
  int32_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}
int32_t PowInt(int32_t a, int32_t b) {
  int64_t r = 1;
  for (int32_t i = 0; i < b; ++i) r *= a;
  return static_cast<int32_t>(r);
}

ARITH(Add, a + b, a + b)
ARITH(Sub, a - b, a - b)
ARITH(Mul, a* b, a* b)
ARITH(RealDiv, a / b, b == 0 ? 0 : a / b)
ARITH(Pow, std::pow(a, b), PowInt(a, b))
ARITH(Maximum, std::max(a, b), std::max(a, b))
ARITH(Minimum, std::min(a, b), std::min(a, b))
// Floor division and modulo follow Python's sign convention, as numpy does.
ARITH(FloorDiv, std::floor(a / b), FloorDivInt(a, b))
ARITH(Mod, a - std::floor(a / b) * b, ModInt(a, b))
COMPARE(Equal, ==)
COMPARE(NotEqual, !=)
COMPARE(Less, <)
COMPARE(LessEqual, <=)
COMPARE(Greater, >)
COMPARE(GreaterEqual, >=)
LOGICAL(LogicalAnd, a && b)
LOGICAL(LogicalOr, a || b)
LOGICAL(LogicalXor, (a != 0) != (b != 0))

// select(cond, a, b): a where cond, else b; all three broadcast together.
absl::StatusOr<std::vector<Tensor>> Select(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* cond, ctx.Input("cond"));
  ASSIGN_OR_RETURN(const Tensor* a, ctx.Input("a"));
  ASSIGN_OR_RETURN(const Tensor* b, ctx.Input("b"));
  if (a->dtype() != b->dtype() || a->dtype() == DType::kString) return ctx.Invalid("a and b differ in type");
  auto ab = BroadcastShapes(a->shape(), b->shape());
  if (!ab.ok()) return ctx.Invalid(ab.status().message());
  auto out = BroadcastShapes(cond->shape(), *ab);
  if (!out.ok()) return ctx.Invalid(out.status().message());
  const std::vector<int64_t> oc = BroadcastOffsets(cond->shape(), *out);
  const std::vector<int64_t> oa = BroadcastOffsets(a->shape(), *out);
  const std::vector<int64_t> ob = BroadcastOffsets(b->shape(), *out);
  ASSIGN_OR_RETURN(Tensor result, Tensor::Allocate(a->dtype(), *out));
  const int64_t n = result.size();
  auto truth = [&](int64_t i) { return cond->AsDouble(oc[i]) != 0; };
  if (a->is_float()) {
    float* o = result.mutable_floats().data();
    for (int64_t i = 0; i < n; ++i) o[i] = truth(i) ? a->floats()[oa[i]] : b->floats()[ob[i]];
  } else {
    int32_t* o = result.mutable_ints().data();
    for (int64_t i = 0; i < n; ++i) o[i] = truth(i) ? a->ints()[oa[i]] : b->ints()[ob[i]];
  }
  return Outputs(std::move(result));
}

}  // namespace

void RegisterElementwiseOps(OpRegistry* r) {
  r->Register("add", Add);
  r->Register("sub", Sub);
  r->Register("mul", Mul);
  r->Register("real_div", RealDiv);
  r->Register("pow", Pow);
  r->Register("maximum", Maximum);
  r->Register("minimum", Minimum);
  r->Register("floor_div", FloorDiv);
  r->Register("mod", Mod);
  r->Register("equal", Equal);
  r->Register("not_equal", NotEqual);
  r->Register("less", Less);
  r->Register("less_equal", LessEqual);
  r->Register("greater", Greater);
  r->Register("greater_equal", GreaterEqual);
  r->Register("logical_and", LogicalAnd);
  r->Register("logical_or", LogicalOr);
  r->Register("logical_xor", LogicalXor);
  r->Register("select", Select);
}

}  // namespace coremlz::execute
