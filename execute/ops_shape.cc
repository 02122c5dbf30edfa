// Shape and data-movement ops (iOS15 tensor_transformation.py and
// tensor_operation.py): reshape, transpose, concat, split, squeeze,
// expand_dims, stack, flatten2d, shape, fill, range_1d. They move elements of
// any dtype; each one computes, for every output element, the input element
// it takes (Take, execute/element_index.h), which keeps them short and
// obviously right.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/element_index.h"
#include "execute/op_registry.h"

namespace coremlz::execute {
namespace {

Tensor Reshaped(const Tensor& x, Shape shape) {
  Tensor out = x;
  out.Reshape(std::move(shape));
  return out;
}

absl::StatusOr<std::vector<Tensor>> Reshape(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(std::vector<int64_t> shape, ctx.Ints("shape"));
  // 0 copies the input dim (when the ranks agree); one -1 takes the rest.
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0 && static_cast<int64_t>(shape.size()) == x->rank()) shape[i] = x->dim(i);
    if (shape[i] == -1) {
      if (infer >= 0) return ctx.Invalid("more than one -1 in shape");
      infer = static_cast<int64_t>(i);
    } else if (shape[i] < 0) {
      return ctx.Invalid("negative dim in shape");
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || x->size() % known != 0) return ctx.Invalid("cannot infer the -1 dim");
    shape[infer] = x->size() / known;
  }
  if (NumElements(shape) != x->size()) {
    return ctx.Invalid(absl::StrCat("cannot reshape ", format::ShapeString(x->shape()), " to ",
                                    format::ShapeString(shape)));
  }
  return Outputs(Reshaped(*x, shape));
}

absl::StatusOr<std::vector<Tensor>> Transpose(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(std::vector<int64_t> perm, ctx.Ints("perm"));
  if (static_cast<int64_t>(perm.size()) != x->rank()) return ctx.Invalid("perm must have one entry per dim");
  std::vector<bool> seen(x->rank(), false);
  for (int64_t& p : perm) {
    auto a = NormalizeAxis(p, x->rank());
    if (!a.ok() || seen[*a]) return ctx.Invalid("perm is not a permutation");
    p = *a;
    seen[p] = true;
  }
  const std::vector<int64_t> in_stride = RowMajorStrides(x->shape());
  Shape out_shape(x->rank());
  for (int64_t d = 0; d < x->rank(); ++d) out_shape[d] = x->dim(perm[d]);
  return Outputs(TakeEach(*x, out_shape, [&](const std::vector<int64_t>& idx, int64_t) {
    int64_t off = 0;
    for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * in_stride[perm[d]];
    return off;
  }));
}

// Joins `values` along `axis` of the output (all the same shape but that axis).
absl::StatusOr<Tensor> Join(const OpContext& ctx, const std::vector<const Tensor*>& values, int64_t axis) {
  const Tensor& first = *values[0];
  Shape out_shape = first.shape();
  out_shape[axis] = 0;
  for (const Tensor* v : values) {
    if (v->dtype() != first.dtype() || v->rank() != first.rank()) return ctx.Invalid("values differ in type or rank");
    for (int64_t d = 0; d < first.rank(); ++d) {
      if (d != axis && v->dim(d) != first.dim(d)) return ctx.Invalid("values differ in shape off the axis");
    }
    out_shape[axis] += v->dim(axis);
  }
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= out_shape[d];
  for (int64_t d = axis + 1; d < first.rank(); ++d) inner *= out_shape[d];
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(first.dtype(), out_shape));
  std::vector<std::string> strings;
  int64_t pos = 0;
  for (int64_t o = 0; o < outer; ++o) {
    for (const Tensor* v : values) {
      const int64_t chunk = v->dim(axis) * inner;
      const int64_t from = o * chunk;
      if (first.is_float()) {
        std::copy_n(v->floats().data() + from, chunk, out.mutable_floats().data() + pos);
      } else if (first.dtype() == DType::kString) {
        strings.insert(strings.end(), v->strings().begin() + from, v->strings().begin() + from + chunk);
      } else {
        std::copy_n(v->ints().data() + from, chunk, out.mutable_ints().data() + pos);
      }
      pos += chunk;
    }
  }
  if (first.dtype() == DType::kString) return Tensor::String(out_shape, std::move(strings));
  return out;
}

absl::StatusOr<std::vector<Tensor>> Concat(const OpContext& ctx) {
  std::vector<const Tensor*> values = ctx.Variadic("values");
  if (values.empty()) return ctx.Invalid("no values");
  ASSIGN_OR_RETURN(int64_t axis_in, ctx.Int("axis"));
  ASSIGN_OR_RETURN(bool interleave, ctx.Bool("interleave", false));
  if (interleave) return absl::UnimplementedError("concat: interleave is not implemented by the reference executor");
  auto axis = NormalizeAxis(axis_in, values[0]->rank());
  if (!axis.ok()) return ctx.Invalid(axis.status().message());
  ASSIGN_OR_RETURN(Tensor out, Join(ctx, values, *axis));
  return Outputs(std::move(out));
}

absl::StatusOr<std::vector<Tensor>> Stack(const OpContext& ctx) {
  std::vector<const Tensor*> values = ctx.Variadic("values");
  if (values.empty()) return ctx.Invalid("no values");
  ASSIGN_OR_RETURN(int64_t axis_in, ctx.Int("axis"));
  auto axis = NormalizeAxis(axis_in, values[0]->rank() + 1);
  if (!axis.ok()) return ctx.Invalid(axis.status().message());
  std::vector<Tensor> expanded;
  for (const Tensor* v : values) {
    if (v->shape() != values[0]->shape()) return ctx.Invalid("values differ in shape");
    Shape s = v->shape();
    s.insert(s.begin() + *axis, 1);
    expanded.push_back(Reshaped(*v, s));
  }
  std::vector<const Tensor*> ptrs;
  for (const Tensor& t : expanded) ptrs.push_back(&t);
  ASSIGN_OR_RETURN(Tensor out, Join(ctx, ptrs, *axis));
  return Outputs(std::move(out));
}

// Elements [begin, begin + size) of `axis`.
Tensor SliceAxis(const Tensor& x, int64_t axis, int64_t begin, int64_t size) {
  Shape out_shape = x.shape();
  out_shape[axis] = size;
  const std::vector<int64_t> stride = RowMajorStrides(x.shape());
  return TakeEach(x, out_shape, [&](const std::vector<int64_t>& idx, int64_t) {
    int64_t off = 0;
    for (size_t d = 0; d < idx.size(); ++d) off += (idx[d] + (static_cast<int64_t>(d) == axis ? begin : 0)) * stride[d];
    return off;
  });
}

absl::StatusOr<std::vector<Tensor>> Split(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(int64_t axis_in, ctx.Int("axis"));
  auto axis = NormalizeAxis(axis_in, x->rank());
  if (!axis.ok()) return ctx.Invalid(axis.status().message());
  const int64_t dim = x->dim(*axis);
  std::vector<int64_t> sizes;
  if (ctx.Has("split_sizes")) {
    ASSIGN_OR_RETURN(sizes, ctx.Ints("split_sizes"));
  } else {
    ASSIGN_OR_RETURN(int64_t n, ctx.Int("num_splits"));
    if (n < 1) return ctx.Invalid("num_splits must be positive");
    // Equal parts, the last one smaller when the dim does not divide.
    const int64_t part = (dim + n - 1) / n;
    for (int64_t i = 0, left = dim; i < n; ++i, left -= part) sizes.push_back(std::max<int64_t>(0, std::min(part, left)));
  }
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0) return ctx.Invalid("negative split size");
    total += s;
  }
  if (total != dim) return ctx.Invalid(absl::StrCat("split sizes add up to ", total, ", not ", dim));
  if (!ctx.outputs().empty() && ctx.outputs().size() != sizes.size()) {
    return ctx.Invalid(absl::StrCat(sizes.size(), " parts but ", ctx.outputs().size(), " declared outputs"));
  }
  std::vector<Tensor> out;
  int64_t begin = 0;
  for (int64_t s : sizes) {
    out.push_back(SliceAxis(*x, *axis, begin, s));
    begin += s;
  }
  return out;
}

absl::StatusOr<std::vector<Tensor>> Squeeze(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  std::vector<bool> drop(x->rank(), false);
  if (ctx.Has("axes")) {
    ASSIGN_OR_RETURN(std::vector<int64_t> axes, ctx.Ints("axes"));
    for (int64_t a : axes) {
      auto axis = NormalizeAxis(a, x->rank());
      if (!axis.ok()) return ctx.Invalid(axis.status().message());
      if (x->dim(*axis) != 1) return ctx.Invalid(absl::StrCat("dim ", a, " is not 1"));
      drop[*axis] = true;
    }
  } else {
    for (int64_t d = 0; d < x->rank(); ++d) drop[d] = x->dim(d) == 1;
  }
  Shape shape;
  for (int64_t d = 0; d < x->rank(); ++d) {
    if (!drop[d]) shape.push_back(x->dim(d));
  }
  return Outputs(Reshaped(*x, shape));
}

absl::StatusOr<std::vector<Tensor>> ExpandDims(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(std::vector<int64_t> axes, ctx.Ints("axes"));
  // Axes index the output, whose rank is rank(x) + len(axes).
  const int64_t rank = x->rank() + static_cast<int64_t>(axes.size());
  std::vector<bool> inserted(rank, false);
  for (int64_t a : axes) {
    auto axis = NormalizeAxis(a, rank);
    if (!axis.ok() || inserted[*axis]) return ctx.Invalid("bad or repeated axis");
    inserted[*axis] = true;
  }
  Shape shape;
  int64_t next = 0;
  for (int64_t d = 0; d < rank; ++d) shape.push_back(inserted[d] ? 1 : x->dim(next++));
  return Outputs(Reshaped(*x, shape));
}

absl::StatusOr<std::vector<Tensor>> Flatten2d(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  ASSIGN_OR_RETURN(int64_t axis_in, ctx.Int("axis", 1));
  const int64_t axis = axis_in < 0 ? axis_in + x->rank() : axis_in;
  if (axis < 0 || axis > x->rank()) return ctx.Invalid("axis out of range");
  int64_t lead = 1;
  for (int64_t d = 0; d < axis; ++d) lead *= x->dim(d);
  const int64_t rest = lead == 0 ? 0 : x->size() / lead;
  return Outputs(Reshaped(*x, {lead, rest}));
}

// The elements slice_by_index selects (and slice_update overwrites): Python
// slice semantics per dim, masks meaning "omitted", squeezed dims indexed.

absl::StatusOr<std::vector<Tensor>> Range1d(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* end, ctx.Input("end"));
  ASSIGN_OR_RETURN(const Tensor* start, ctx.Input("start"));
  ASSIGN_OR_RETURN(const Tensor* step, ctx.Input("step"));
  if (end->size() != 1 || start->size() != 1 || step->size() != 1) return ctx.Invalid("end, start and step must be scalars");
  const double e = end->AsDouble(0), s = start->AsDouble(0), st = step->AsDouble(0);
  if (st == 0 || !std::isfinite(s) || !std::isfinite(e) || !std::isfinite(st)) return ctx.Invalid("step 0 or a non-finite bound");
  const double count = std::ceil((e - s) / st);
  // Checked as a double first: casting an out-of-range double is undefined.
  RETURN_IF_ERROR(CheckElementCount(count, "the range"));
  const int64_t n = std::max<int64_t>(0, static_cast<int64_t>(count));
  if (start->is_float() || end->is_float() || step->is_float()) {
    std::vector<float> v(n);
    for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(s + i * st);
    return Outputs(Tensor::Float({n}, std::move(v)));
  }
  std::vector<int32_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<int32_t>(s + i * st);
  return Outputs(Tensor::Int({n}, std::move(v)));
}

absl::StatusOr<std::vector<Tensor>> ShapeOf(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  std::vector<int32_t> dims(x->shape().begin(), x->shape().end());
  return Outputs(Tensor::Int({x->rank()}, std::move(dims)));
}

absl::StatusOr<std::vector<Tensor>> Fill(const OpContext& ctx) {
  ASSIGN_OR_RETURN(std::vector<int64_t> shape, ctx.Ints("shape"));
  ASSIGN_OR_RETURN(double value, ctx.Float("value", 0));
  for (int64_t d : shape) {
    if (d < 0) return ctx.Invalid("negative dim");
  }
  RETURN_IF_ERROR(CheckShape(shape));
  return Outputs(Tensor::Float(shape, std::vector<float>(NumElements(shape), static_cast<float>(value))));
}

}  // namespace

void RegisterShapeOps(OpRegistry* r) {
  r->Register("reshape", Reshape);
  r->Register("transpose", Transpose);
  r->Register("concat", Concat);
  r->Register("stack", Stack);
  r->Register("split", Split);
  r->Register("squeeze", Squeeze);
  r->Register("expand_dims", ExpandDims);
  r->Register("flatten2d", Flatten2d);
  r->Register("shape", ShapeOf);
  r->Register("range_1d", Range1d);
  r->Register("fill", Fill);
}

}  // namespace coremlz::execute
