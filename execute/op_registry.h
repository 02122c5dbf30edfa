// The table of implemented ops: MIL op type -> kernel. A kernel receives the
// op's resolved inputs (by MIL input name) and its declared outputs, and
// returns the output tensors; differences between opset versions are handled
// inside the kernel from OpContext::opset().
#ifndef COREMLZ_EXECUTE_OP_REGISTRY_H_
#define COREMLZ_EXECUTE_OP_REGISTRY_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "execute/tensor.h"

namespace coremlz::execute {

// A declared output of an op (from the program's type annotations). Shapes
// may hold -1 for dimensions unknown at conversion time.
struct OutputDecl {
  std::string name;
  DType dtype = DType::kFloat32;
  Shape shape;
  bool shape_known = false;
};

class OpContext {
 public:
  // `opset` is the iOS generation of the function's opset (15 for CoreML5,
  // 16 for CoreML6, 17 for CoreML7, 18 for CoreML8).
  OpContext(std::string type, int opset, const std::vector<OutputDecl>* outputs)
      : type_(std::move(type)), opset_(opset), outputs_(outputs) {}

  void Bind(const std::string& input, std::vector<const Tensor*> values) { inputs_[input] = std::move(values); }

  const std::string& type() const { return type_; }
  int opset() const { return opset_; }
  const std::vector<OutputDecl>& outputs() const { return *outputs_; }

  bool Has(absl::string_view name) const { return inputs_.count(std::string(name)) > 0; }
  // A single-valued input; INVALID_ARGUMENT when absent or variadic.
  absl::StatusOr<const Tensor*> Input(absl::string_view name) const;
  // nullptr when absent.
  const Tensor* Optional(absl::string_view name) const;
  // Every value bound to a variadic input (concat's "values", ...).
  std::vector<const Tensor*> Variadic(absl::string_view name) const;

  // Parameter accessors with defaults for optional inputs.
  absl::StatusOr<int64_t> Int(absl::string_view name) const;
  absl::StatusOr<int64_t> Int(absl::string_view name, int64_t fallback) const;
  absl::StatusOr<double> Float(absl::string_view name, double fallback) const;
  absl::StatusOr<bool> Bool(absl::string_view name, bool fallback) const;
  absl::StatusOr<std::string> String(absl::string_view name, std::string fallback) const;
  // A 1-D integer parameter (an absent optional one gives `fallback`).
  absl::StatusOr<std::vector<int64_t>> Ints(absl::string_view name) const;
  absl::StatusOr<std::vector<int64_t>> Ints(absl::string_view name, std::vector<int64_t> fallback) const;

  // An INVALID_ARGUMENT error prefixed with the op type.
  absl::Status Invalid(absl::string_view message) const;

 private:
  std::string type_;
  int opset_;
  const std::vector<OutputDecl>* outputs_;
  std::map<std::string, std::vector<const Tensor*>> inputs_;
};

using OpKernel = absl::StatusOr<std::vector<Tensor>> (*)(const OpContext&);

class OpRegistry {
 public:
  // Every op this executor implements.
  static const OpRegistry& Default();

  void Register(const std::string& type, OpKernel kernel) { kernels_[type] = kernel; }
  // nullptr when the op is not implemented.
  OpKernel Find(absl::string_view type) const;
  std::vector<std::string> Types() const;

 private:
  std::map<std::string, OpKernel, std::less<>> kernels_;
};

// Registration functions, one per ops_*.cc file.
void RegisterElementwiseOps(OpRegistry* registry);
void RegisterActivationOps(OpRegistry* registry);
void RegisterConvOps(OpRegistry* registry);
void RegisterPoolOps(OpRegistry* registry);
void RegisterLinalgOps(OpRegistry* registry);
void RegisterNormOps(OpRegistry* registry);
void RegisterReduceOps(OpRegistry* registry);
void RegisterShapeOps(OpRegistry* registry);
void RegisterIndexingOps(OpRegistry* registry);
void RegisterResizeOps(OpRegistry* registry);
void RegisterRecurrentOps(OpRegistry* registry);
void RegisterAttentionOps(OpRegistry* registry);
void RegisterListOps(OpRegistry* registry);
void RegisterGatherScatterOps(OpRegistry* registry);
void RegisterSortOps(OpRegistry* registry);
void RegisterEinsumOps(OpRegistry* registry);
void RegisterQuantOps(OpRegistry* registry);
void RegisterBandPartOps(OpRegistry* registry);
void RegisterLikeOps(OpRegistry* registry);
void RegisterReverseOps(OpRegistry* registry);
void RegisterRearrangeOps(OpRegistry* registry);
void RegisterSamplingOps(OpRegistry* registry);
void RegisterSelectOps(OpRegistry* registry);
void RegisterClassifyOps(OpRegistry* registry);
void RegisterRandomOps(OpRegistry* registry);

// Normalises a possibly negative axis into [0, rank); INVALID_ARGUMENT when
// out of range.
absl::StatusOr<int64_t> NormalizeAxis(int64_t axis, int64_t rank);

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_OP_REGISTRY_H_
