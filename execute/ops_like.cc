// Ops whose output shape is another tensor's (coremltools iOS16
// tensor_operation.py fill_like, tensor_transformation.py reshape_like):
// converters emit them for torch's *_like ops and dynamic reshapes in
// transformers, where the shape is known only at run time.
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/op_registry.h"

namespace coremlz::execute {
namespace {

// fill_like(ref_tensor, value = 0.0): ref_tensor's shape, value's dtype.
absl::StatusOr<std::vector<Tensor>> FillLike(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* ref, ctx.Input("ref_tensor"));
  const Tensor* value = ctx.Optional("value");
  if (value && (value->size() != 1 || (!value->is_float() && !value->is_integer_storage()))) {
    return ctx.Invalid("value must be a numeric scalar");
  }
  const DType dtype = value ? value->dtype() : DType::kFloat32;
  ASSIGN_OR_RETURN(Tensor out, Tensor::Allocate(dtype, ref->shape()));
  if (dtype == DType::kFloat32) {
    const float v = value ? value->floats()[0] : 0.0f;
    for (float& f : out.mutable_floats()) f = v;
  } else {
    const int32_t v = value->ints()[0];
    for (int32_t& i : out.mutable_ints()) i = v;
  }
  return Outputs(std::move(out));
}

// reshape_like(x, ref_tensors, begins, ends, end_masks): the output shape is
// the concatenation of ref_tensors[i].shape[begins[i]:ends[i]] (to the end
// where end_masks[i]).
absl::StatusOr<std::vector<Tensor>> ReshapeLike(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* x, ctx.Input("x"));
  const std::vector<const Tensor*> refs = ctx.Variadic("ref_tensors");
  const std::vector<const Tensor*> begins = ctx.Variadic("begins");
  const std::vector<const Tensor*> ends = ctx.Variadic("ends");
  const std::vector<const Tensor*> end_masks = ctx.Variadic("end_masks");
  if (refs.empty() || begins.size() != refs.size() || ends.size() != refs.size() || end_masks.size() != refs.size()) {
    return ctx.Invalid("ref_tensors, begins, ends and end_masks must have one entry each per reference");
  }
  Shape shape;
  for (size_t i = 0; i < refs.size(); ++i) {
    for (const Tensor* t : {begins[i], ends[i], end_masks[i]}) {
      if (t->size() != 1 || !t->is_integer_storage()) return ctx.Invalid("begins, ends and end_masks hold scalars");
    }
    const int64_t rank = refs[i]->rank(), begin = begins[i]->AsInt(0);
    const int64_t end = end_masks[i]->AsInt(0) != 0 ? rank : ends[i]->AsInt(0);
    if (begin < 0 || begin > end || end > rank) {
      return ctx.Invalid(absl::StrCat("[", begin, ":", end, "] is not a range of the dims of a rank-", rank, " reference"));
    }
    shape.insert(shape.end(), refs[i]->shape().begin() + begin, refs[i]->shape().begin() + end);
  }
  if (NumElements(shape) != x->size()) {
    return ctx.Invalid(absl::StrCat("cannot reshape ", format::ShapeString(x->shape()), " to ", format::ShapeString(shape)));
  }
  Tensor out = *x;
  out.Reshape(std::move(shape));
  return Outputs(std::move(out));
}

}  // namespace

void RegisterLikeOps(OpRegistry* r) {
  r->Register("fill_like", FillLike);
  r->Register("reshape_like", ReshapeLike);
}

}  // namespace coremlz::execute
