#include "execute/op_registry.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace coremlz::execute {

absl::StatusOr<const Tensor*> OpContext::Input(absl::string_view name) const {
  auto it = inputs_.find(std::string(name));
  if (it == inputs_.end()) return Invalid(absl::StrCat("missing input '", name, "'"));
  if (it->second.size() != 1) return Invalid(absl::StrCat("input '", name, "' must be one value"));
  return it->second[0];
}

const Tensor* OpContext::Optional(absl::string_view name) const {
  auto it = inputs_.find(std::string(name));
  if (it == inputs_.end() || it->second.size() != 1) return nullptr;
  return it->second[0];
}

std::vector<const Tensor*> OpContext::Variadic(absl::string_view name) const {
  auto it = inputs_.find(std::string(name));
  if (it == inputs_.end()) return {};
  return it->second;
}

absl::StatusOr<int64_t> OpContext::Int(absl::string_view name) const {
  ASSIGN_OR_RETURN(const Tensor* t, Input(name));
  if (t->size() != 1 || t->dtype() == DType::kString) {
    return Invalid(absl::StrCat("input '", name, "' must be a scalar integer"));
  }
  return t->AsInt(0);
}

absl::StatusOr<int64_t> OpContext::Int(absl::string_view name, int64_t fallback) const {
  if (!Has(name)) return fallback;
  return Int(name);
}

absl::StatusOr<double> OpContext::Float(absl::string_view name, double fallback) const {
  if (!Has(name)) return fallback;
  ASSIGN_OR_RETURN(const Tensor* t, Input(name));
  if (t->size() != 1 || t->dtype() == DType::kString) {
    return Invalid(absl::StrCat("input '", name, "' must be a scalar number"));
  }
  return t->AsDouble(0);
}

absl::StatusOr<bool> OpContext::Bool(absl::string_view name, bool fallback) const {
  if (!Has(name)) return fallback;
  ASSIGN_OR_RETURN(const Tensor* t, Input(name));
  if (t->size() != 1 || t->dtype() == DType::kString) {
    return Invalid(absl::StrCat("input '", name, "' must be a scalar bool"));
  }
  return t->AsInt(0) != 0;
}

absl::StatusOr<std::string> OpContext::String(absl::string_view name, std::string fallback) const {
  if (!Has(name)) return fallback;
  ASSIGN_OR_RETURN(const Tensor* t, Input(name));
  if (t->dtype() != DType::kString || t->size() != 1) {
    return Invalid(absl::StrCat("input '", name, "' must be a string"));
  }
  return t->strings()[0];
}

absl::StatusOr<std::vector<int64_t>> OpContext::Ints(absl::string_view name) const {
  ASSIGN_OR_RETURN(const Tensor* t, Input(name));
  if (!t->is_integer_storage() || t->rank() > 1) {
    return Invalid(absl::StrCat("input '", name, "' must be a 1-D integer tensor"));
  }
  std::vector<int64_t> out(t->ints().begin(), t->ints().end());
  return out;
}

absl::StatusOr<std::vector<int64_t>> OpContext::Ints(absl::string_view name,
                                                      std::vector<int64_t> fallback) const {
  if (!Has(name)) return fallback;
  return Ints(name);
}

absl::Status OpContext::Invalid(absl::string_view message) const {
  return absl::InvalidArgumentError(absl::StrCat(type_, ": ", message));
}

OpKernel OpRegistry::Find(absl::string_view type) const {
  auto it = kernels_.find(type);
  return it == kernels_.end() ? nullptr : it->second;
}

std::vector<std::string> OpRegistry::Types() const {
  std::vector<std::string> out;
  for (const auto& [type, kernel] : kernels_) out.push_back(type);
  return out;
}

const OpRegistry& OpRegistry::Default() {
  // Built on first use by explicit calls, so no kernel depends on static
  // initialisation order or on the linker keeping an unreferenced object.
  static const OpRegistry* registry = [] {
    auto* r = new OpRegistry;
    RegisterElementwiseOps(r);
    RegisterActivationOps(r);
    RegisterConvOps(r);
    RegisterPoolOps(r);
    RegisterLinalgOps(r);
    RegisterNormOps(r);
    RegisterReduceOps(r);
    RegisterShapeOps(r);
    RegisterIndexingOps(r);
    RegisterResizeOps(r);
    RegisterRecurrentOps(r);
    RegisterAttentionOps(r);
    RegisterListOps(r);
    RegisterGatherScatterOps(r);
    RegisterSortOps(r);
    RegisterEinsumOps(r);
    RegisterQuantOps(r);
    RegisterBandPartOps(r);
    RegisterLikeOps(r);
    RegisterReverseOps(r);
    RegisterRearrangeOps(r);
    RegisterSamplingOps(r);
    RegisterSelectOps(r);
    RegisterClassifyOps(r);
    RegisterRandomOps(r);
    return r;
  }();
  return *registry;
}

absl::StatusOr<int64_t> NormalizeAxis(int64_t axis, int64_t rank) {
  const int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) {
    return absl::InvalidArgumentError(absl::StrCat("axis ", axis, " is out of range for rank ", rank));
  }
  return a;
}

}  // namespace coremlz::execute
