// classify (iOS15 classify.py): the last op of a classifier program. Its
// outputs are given as Core ML presents them, as far as tensors can: the
// class label of the highest probability (the first of equal ones) as a
// scalar string or int32 tensor, and the probability dictionary as a float
// tensor of the probabilities in the order of `classes` (the dictionary's
// values; its keys are the classes), as the NeuralNetwork classifier's.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "execute/op_registry.h"

namespace coremlz::execute {
namespace {

absl::StatusOr<std::vector<Tensor>> Classify(const OpContext& ctx) {
  ASSIGN_OR_RETURN(const Tensor* p, ctx.Input("probabilities"));
  ASSIGN_OR_RETURN(const Tensor* classes, ctx.Input("classes"));
  if (!p->is_float()) return ctx.Invalid("probabilities must be floating point");
  if (classes->rank() != 1 || (classes->dtype() != DType::kString && classes->dtype() != DType::kInt32)) {
    return ctx.Invalid("classes must be a list of strings or integers");
  }
  if (classes->size() != p->size() || p->size() == 0) {
    return ctx.Invalid(absl::StrCat(classes->size(), " classes for ", p->size(), " probabilities"));
  }
  const auto v = p->floats();
  const int64_t best = std::max_element(v.begin(), v.end()) - v.begin();
  Tensor label = classes->dtype() == DType::kString ? Tensor::String({}, {classes->strings()[best]})
                                                    : Tensor::Int({}, {classes->ints()[best]});
  return Outputs(std::move(label), Tensor::Float({p->size()}, {v.begin(), v.end()}));
}

}  // namespace

void RegisterClassifyOps(OpRegistry* r) { r->Register("classify", Classify); }

}  // namespace coremlz::execute
