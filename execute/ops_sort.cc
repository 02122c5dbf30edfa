// Sorting along an axis (coremltools iOS15/iOS16 tensor_operation.py): topk
// and argsort. Both are descending unless `ascending`. Ties keep their input
// order (lower index first) in either direction - coremltools computes these
// ops as numpy's argsort of x or of -x, and this is the order a stable sort
// of that gives. NaN sorts last in either direction, as numpy places it.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/op_registry.h"

namespace coremlz::execute {
namespace {

// The positions of a line of `x` (n elements, `stride` apart from `start`)
// in sorted order.
std::vector<int64_t> SortedLine(const Tensor& x, int64_t start, int64_t n, int64_t stride, bool ascending) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  auto value = [&](int64_t i) { return x.AsDouble(start + i * stride); };
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    const double va = value(a), vb = value(b);
    if (std::isnan(va)) return false;
    if (std::isnan(vb)) return true;
    return ascending ? va < vb : va > vb;
  });
  return order;
}

struct Lines {
  int64_t outer, n, inner;
};

absl::StatusOr<Lines> LinesAlong(const OpContext& ctx, const Tensor& x, int64_t axis_in, int64_t* axis) {
  if (!x.is_float() && !x.is_integer_storage()) return ctx.Invalid("x must be a numeric tensor");
  auto a = NormalizeAxis(axis_in, x.rank());
  if (!a.ok()) return ctx.Invalid(a.status().message());
  *axis = *a;
  Lines l{1, x.dim(*a), 1};
  for (int64_t d = 0; d < *a; ++d) l.outer *= x.dim(d);
  for (int64_t d = *a + 1; d < x.rank(); ++d) l.inner *= x.dim(d);
  return l;
}

// topk(x, k = 1, axis = -1, ascending = false; iOS16: sort = true,
// return_indices = true) -> values[, indices]. Unsorted output is allowed
// by the op, sorted output is one valid answer.
absl::StatusOr<std::vector<Tensor>> TopK(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(int64_t k, ctx.Int("k", 1));
  ASSIGN_OR_RETURN(int64_t axis_in, ctx.Int("axis", -1));
  ASSIGN_OR_RETURN(bool ascending, ctx.Bool("ascending", false));
  ASSIGN_OR_RETURN(bool return_indices, ctx.Bool("return_indices", true));
  int64_t axis = 0;
  ASSIGN_OR_RETURN(Lines l, LinesAlong(ctx, *x, axis_in, &axis));
  if (k < 0 || k > l.n) return ctx.Invalid(absl::StrCat("k = ", k, " is out of range for a dim of ", l.n));
  Shape out_shape = x->shape();
  out_shape[axis] = k;
  ASSIGN_OR_RETURN(Tensor values, Tensor::Allocate(x->dtype(), out_shape));
  ASSIGN_OR_RETURN(Tensor indices, Tensor::Allocate(DType::kInt32, out_shape));
  for (int64_t o = 0; o < l.outer; ++o) {
    for (int64_t i = 0; i < l.inner; ++i) {
      const int64_t start = o * l.n * l.inner + i;
      const std::vector<int64_t> order = SortedLine(*x, start, l.n, l.inner, ascending);
      for (int64_t j = 0; j < k; ++j) {
        const int64_t from = start + order[j] * l.inner, to = (o * k + j) * l.inner + i;
        if (x->is_float()) {
          values.mutable_floats()[to] = x->floats()[from];
        } else {
          values.mutable_ints()[to] = x->ints()[from];
        }
        indices.mutable_ints()[to] = static_cast<int32_t>(order[j]);
      }
    }
  }
  std::vector<Tensor> out;
  out.push_back(std::move(values));
  if (return_indices) out.push_back(std::move(indices));
  return out;
}

// argsort(x, axis = -1, ascending = false) -> int32 positions along axis.
absl::StatusOr<std::vector<Tensor>> ArgSort(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(int64_t axis_in, ctx.Int("axis", -1));
  ASSIGN_OR_RETURN(bool ascending, ctx.Bool("ascending", false));
  int64_t axis = 0;
  ASSIGN_OR_RETURN(Lines l, LinesAlong(ctx, *x, axis_in, &axis));
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(DType::kInt32, x->shape()));
  for (int64_t o = 0; o < l.outer; ++o) {
    for (int64_t i = 0; i < l.inner; ++i) {
      const int64_t start = o * l.n * l.inner + i;
      const std::vector<int64_t> order = SortedLine(*x, start, l.n, l.inner, ascending);
      for (int64_t j = 0; j < l.n; ++j) out.mutable_ints()[start + j * l.inner] = static_cast<int32_t>(order[j]);
    }
  }
  return Outputs(std::move(out));
}

}  // namespace

void RegisterSortOps(OpRegistry* r) {
  r->Register("topk", TopK);
  r->Register("argsort", ArgSort);
}

}  // namespace coremlz::execute
