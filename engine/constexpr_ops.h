// Core ML's constexpr ops, evaluated as Core ML does at load time: one
// function per op type (its iOS16 and iOS18 forms), written against the op
// definitions. ConstexprEvaluator looks them up by op type.
//
// constexpr_ops.cc is ~500 lines because it is the table itself: eleven op
// types in two opset forms each, every one a short function.
#ifndef COREMLZ_ENGINE_CONSTEXPR_OPS_H_
#define COREMLZ_ENGINE_CONSTEXPR_OPS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coreml/mil.pb.h"
#include "engine/decompress.h"
#include "format/tensor.h"

namespace coremlz::engine {

// What an op's evaluation reads - its parameters, bound as values or to
// earlier constexpr outputs - and how it words an error (naming the op).
class ConstexprOpContext {
 public:
  ConstexprOpContext(const CoreML::Specification::MILSpec::Operation& op, ValueReader* reader,
                     const ConstexprEvaluator& earlier);

  bool Has(const std::string& name) const;
  absl::StatusOr<format::Tensor> Get(const std::string& name) const;
  absl::StatusOr<format::TensorTypeInfo> OutputType(int i) const;
  absl::Status Fail(absl::string_view what) const;

 private:
  absl::StatusOr<format::Tensor> Wrap(absl::StatusOr<format::Tensor> t, const std::string& name) const;

  const CoreML::Specification::MILSpec::Operation& op_;
  ValueReader* reader_;
  const ConstexprEvaluator& earlier_;
};

// Computes an op's outputs, in the op's order; `first_output` is the type
// its first output declares (some ops take their dtype from it).
using ConstexprOpFn = absl::StatusOr<std::vector<format::Tensor>> (*)(const ConstexprOpContext& op,
                                                                      const format::TensorTypeInfo& first_output);

// The evaluation of `op_type` ("constexpr_lut_to_dense", ...); null for an
// op type coremlz does not know.
ConstexprOpFn FindConstexprOp(absl::string_view op_type);

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_CONSTEXPR_OPS_H_
