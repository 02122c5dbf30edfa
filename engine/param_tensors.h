// Tensors for the parameters of the constexpr ops a compressed weight becomes:
// codes packed to their bit width, values in the weight's float dtype, and
// the int32 / uint32 scalars and shapes the ops take.
#ifndef COREMLZ_ENGINE_PARAM_TENSORS_H_
#define COREMLZ_ENGINE_PARAM_TENSORS_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "format/tensor.h"

namespace coremlz::engine {

// The unsigned index dtype of `bits` (1, 2, 3, 4, 6; anything else: uint8).
format::ElementType UIntType(int bits);
// `codes` (one per byte) packed to the width of `type`.
format::Tensor CodesTensor(format::ElementType type, format::Shape shape, absl::Span<const uint8_t> codes);
// fp16 (rounded) or fp32 values.
format::Tensor MakeFloatTensor(format::ElementType type, format::Shape shape, const std::vector<float>& values);
format::Tensor Int32Scalar(int32_t v);
// A shape as the uint32 vector iOS16 ops take.
format::Tensor ShapeTensor(const format::Shape& shape);

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_PARAM_TENSORS_H_
