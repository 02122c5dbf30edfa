// MIL lists (iOS15 control-flow ops): make_list, list_length, list_read,
// list_write, list_gather, list_scatter. TensorFlow's TensorArrays convert to
// these, with while_loop bodies reading and writing them (DTLN's LSTMs).
// A list value is immutable like every other value: writing makes a new
// element vector that shares the unchanged elements.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/op_registry.h"

namespace coremlz::execute {
namespace {

absl::StatusOr<const Tensor*> ListInput(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* ls, ctx.Input("ls"));
  if (!ls->is_list()) return ctx.Invalid("'ls' is not a list");
  return ls;
}

// A scalar index within [0, length) (or == length when `may_append`).
absl::StatusOr<int64_t> Index(const OpContext& ctx, const Tensor& index, int64_t length, bool may_append) {
  if (index.size() != 1 || index.is_float()) return ctx.Invalid("'index' must be one integer");
  const int64_t i = index.AsInt(0);
  if (i < 0 || i > length || (i == length && !may_append)) {
    return ctx.Invalid(absl::StrCat("index ", i, " is outside the list of length ", length));
  }
  return i;
}

// make_list's elem_shape is not needed: elements take the shape of what is
// written (and a dim may be a run-time symbol such as "is1"); reading an
// element never written is an error rather than a guess.
absl::StatusOr<std::vector<Tensor>> MakeList(const OpContext& ctx) {
  ASSIGN_OR_RETURN(int64_t length, ctx.Int("init_length", 1));
  ASSIGN_OR_RETURN(std::string dtype, ctx.String("dtype", "fp32"));
  if (length < 0) return ctx.Invalid("negative init_length");
  RETURN_IF_ERROR(CheckShape({length}));
  DType element = DType::kFloat32;
  if (dtype == "int32" || dtype == "int64" || dtype == "int16" || dtype == "int8" || dtype == "uint8") {
    element = DType::kInt32;
  } else if (dtype == "bool") {
    element = DType::kBool;
  } else if (dtype != "fp32" && dtype != "fp16" && dtype != "fp64") {
    return ctx.Invalid(absl::StrCat("unknown dtype '", dtype, "'"));
  }
  return Outputs(Tensor::List(element, length));
}

absl::StatusOr<std::vector<Tensor>> ListLength(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* ls, ListInput(ctx));
  return Outputs(Tensor::IntScalar(static_cast<int32_t>(ls->elements().size())));
}

absl::StatusOr<Tensor> Element(const OpContext& ctx, const Tensor& ls, int64_t i) {
  const auto& e = ls.elements()[static_cast<size_t>(i)];
  if (!e) return ctx.Invalid(absl::StrCat("element ", i, " is read before it was written"));
  return *e;
}

absl::StatusOr<std::vector<Tensor>> ListRead(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* ls, ListInput(ctx));
  ASSIGN_OR_RETURN(const Tensor* index, ctx.Input("index"));
  ASSIGN_OR_RETURN(int64_t i, Index(ctx, *index, static_cast<int64_t>(ls->elements().size()), false));
  ASSIGN_OR_RETURN(Tensor e, Element(ctx, *ls, i));
  return Outputs(std::move(e));
}

absl::Status CheckElement(const OpContext& ctx, const Tensor& ls, const Tensor& value) {
  if (value.is_list() || value.dtype() != ls.element_dtype()) {
    return ctx.Invalid(absl::StrCat("a ", DTypeName(value.dtype()), " value in a list of ", DTypeName(ls.element_dtype())));
  }
  // Every element of a list has one shape.
  for (const auto& e : ls.elements()) {
    if (e && e->shape() != value.shape()) return ctx.Invalid("elements of different shapes in one list");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Tensor>> ListWrite(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* ls, ListInput(ctx));
  ASSIGN_OR_RETURN(const Tensor* index, ctx.Input("index"));
  ASSIGN_OR_RETURN(const Tensor* value, ctx.Input("value"));
  ASSIGN_OR_RETURN(int64_t i, Index(ctx, *index, static_cast<int64_t>(ls->elements().size()), true));
  RETURN_IF_ERROR(CheckElement(ctx, *ls, *value));
  Tensor out = *ls;
  if (i == static_cast<int64_t>(out.elements().size())) out.mutable_elements().emplace_back();
  out.mutable_elements()[static_cast<size_t>(i)] = std::make_shared<const Tensor>(*value);
  return Outputs(std::move(out));
}

// The elements at `indices`, stacked on a new leading axis.
absl::StatusOr<std::vector<Tensor>> ListGather(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* ls, ListInput(ctx));
  ASSIGN_OR_RETURN(const Tensor* indices, ctx.Input("indices"));
  if (indices->is_float() || indices->rank() > 1) return ctx.Invalid("'indices' must be a 1-D integer tensor");
  const int64_t length = static_cast<int64_t>(ls->elements().size());
  std::vector<Tensor> picked;
  for (int64_t k = 0; k < indices->size(); ++k) {
    ASSIGN_OR_RETURN(int64_t i, Index(ctx, Tensor::IntScalar(static_cast<int32_t>(indices->AsInt(k))), length, false));
    ASSIGN_OR_RETURN(Tensor e, Element(ctx, *ls, i));
    picked.push_back(std::move(e));
  }
  if (picked.empty()) return ctx.Invalid("gathering no elements gives no element shape");
  Shape shape = picked[0].shape();
  shape.insert(shape.begin(), static_cast<int64_t>(picked.size()));
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(picked[0].dtype(), shape));
  const int64_t each = picked[0].size();
  for (size_t k = 0; k < picked.size(); ++k) {
    if (picked[k].shape() != picked[0].shape()) return ctx.Invalid("elements of different shapes in one list");
    if (out.is_float()) {
      std::copy(picked[k].floats().begin(), picked[k].floats().end(), out.mutable_floats().begin() + k * each);
    } else {
      std::copy(picked[k].ints().begin(), picked[k].ints().end(), out.mutable_ints().begin() + k * each);
    }
  }
  return Outputs(std::move(out));
}

// value[k] becomes element indices[k]; the list grows when it must.
absl::StatusOr<std::vector<Tensor>> ListScatter(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* ls, ListInput(ctx));
  ASSIGN_OR_RETURN(const Tensor* indices, ctx.Input("indices"));
  ASSIGN_OR_RETURN(const Tensor* value, ctx.Input("value"));
  if (indices->is_float() || indices->rank() > 1) return ctx.Invalid("'indices' must be a 1-D integer tensor");
  if (value->is_list() || value->rank() < 1 || value->dim(0) != indices->size()) {
    return ctx.Invalid("'value' must hold one slice per index on its first axis");
  }
  if (value->dtype() != ls->element_dtype()) return ctx.Invalid("'value' is not of the list's element type");
  Tensor out = *ls;
  const Shape element_shape(value->shape().begin() + 1, value->shape().end());
  const int64_t each = NumElements(element_shape);
  for (int64_t k = 0; k < indices->size(); ++k) {
    const int64_t i = indices->AsInt(k);
    if (i < 0) return ctx.Invalid(absl::StrCat("negative index ", i));
    RETURN_IF_ERROR(CheckShape({i + 1}));
    if (i >= static_cast<int64_t>(out.elements().size())) out.mutable_elements().resize(static_cast<size_t>(i + 1));
    Tensor e = Tensor::Zeros(value->dtype(), element_shape);
    if (value->is_float()) {
      std::copy_n(value->floats().begin() + k * each, each, e.mutable_floats().begin());
    } else {
      std::copy_n(value->ints().begin() + k * each, each, e.mutable_ints().begin());
    }
    out.mutable_elements()[static_cast<size_t>(i)] = std::make_shared<const Tensor>(std::move(e));
  }
  for (const auto& e : out.elements()) {
    if (e && e->shape() != element_shape) return ctx.Invalid("elements of different shapes in one list");
  }
  return Outputs(std::move(out));
}

}  // namespace

void RegisterListOps(OpRegistry* r) {
  r->Register("make_list", MakeList);
  r->Register("list_length", ListLength);
  r->Register("list_read", ListRead);
  r->Register("list_write", ListWrite);
  r->Register("list_gather", ListGather);
  r->Register("list_scatter", ListScatter);
}

}  // namespace coremlz::execute
