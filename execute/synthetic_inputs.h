// Inputs for running a model when the user supplies none: seeded and
// reproducible (the same seed and sample index give the same tensors on any
// machine), shaped from the model's own description. Flexible shapes take the
// description's default shape; image inputs are pixels in [0, 255] (a smooth
// pattern with noise, which the program's own preprocessing ops then scale);
// integer inputs that index a `gather` stay within the gathered axis (token
// ids within the vocabulary); floats that reach a log or sqrt are |N(0, 1)|;
// other floats are N(0, 1).
#ifndef COREMLZ_EXECUTE_SYNTHETIC_INPUTS_H_
#define COREMLZ_EXECUTE_SYNTHETIC_INPUTS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coreml/model.pb.h"
#include "execute/model_executor.h"
#include "execute/tensor.h"

namespace coremlz::execute {

struct InputSpec {
  std::string name;
  DType dtype = DType::kFloat32;
  Shape shape;              // fully resolved
  bool image = false;       // pixels in [0, 255]
  bool non_negative = false;  // |N(0, 1)|: the input reaches a log or sqrt
  int32_t int_limit = 16;   // integers drawn from [0, int_limit)
  std::string note;         // how the values are chosen, for people
};

// How each input of `executor`'s function is synthesised. INVALID_ARGUMENT
// when a shape cannot be resolved.
absl::StatusOr<std::vector<InputSpec>> DescribeInputs(const CoreML::Specification::Model& model,
                                                      const std::string& function,
                                                      const std::vector<InputDecl>& inputs);
inline absl::StatusOr<std::vector<InputSpec>> DescribeInputs(const CoreML::Specification::Model& model,
                                                             const ModelExecutor& executor) {
  return DescribeInputs(model, executor.function(), executor.inputs());
}
inline absl::StatusOr<std::vector<InputSpec>> DescribeInputs(const CoreML::Specification::Model& model,
                                                             const ProgramExecutor& executor) {
  return DescribeInputs(model, executor.function(), executor.inputs());
}

// Sample `index` of the inputs for `seed`.
std::map<std::string, Tensor> SyntheticInputs(const std::vector<InputSpec>& specs, uint64_t seed, int index);

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_SYNTHETIC_INPUTS_H_
