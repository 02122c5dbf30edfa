// A dense tensor in Core ML's storage layout, and conversion between MIL
// values (immediate or blob-backed) and that layout.
//
// `bytes` always holds elements exactly as blob storage would: little-endian,
// row-major, sub-byte types packed LSB-first (format/sub_byte.h), bool as one
// byte per element. Immediate values are converted to and from the MIL proto's
// per-dtype encoding (fp32 -> floats, fp16/int8/uint8/uint32/sub-byte ->
// bytes, int16/uint16/int32 -> ints, int64 -> longInts, bool -> bools, ...).
#ifndef COREMLZ_FORMAT_TENSOR_H_
#define COREMLZ_FORMAT_TENSOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "coreml/mil.pb.h"
#include "format/element_type.h"

namespace coremlz::format {

using Shape = std::vector<int64_t>;

// Product of dims; fails on negative dims or overflow past 2^62 elements.
absl::StatusOr<uint64_t> ElementCount(absl::Span<const int64_t> shape);
std::string ShapeString(absl::Span<const int64_t> shape);  // "[128, 64, 3, 3]"

struct Tensor {
  ElementType type = ElementType::kFloat32;
  Shape shape;
  std::string bytes;

  uint64_t element_count() const;  // of a validated tensor
};

// A typed view of a tensor's bytes without owning them.
struct TensorView {
  ElementType type = ElementType::kFloat32;
  Shape shape;
  absl::string_view bytes;
};
inline TensorView View(const Tensor& t) { return {t.type, t.shape, t.bytes}; }

// Builds a validated tensor: the byte count must match type and shape.
absl::StatusOr<Tensor> MakeTensor(ElementType type, Shape shape, std::string bytes);

// Element type and fully known shape of a MIL tensor type.
struct TensorTypeInfo {
  ElementType type;
  Shape shape;
};
absl::StatusOr<TensorTypeInfo> ReadTensorType(const CoreML::Specification::MILSpec::ValueType& type);
CoreML::Specification::MILSpec::ValueType MakeTensorType(ElementType type,
                                                         absl::Span<const int64_t> shape);

// Decodes an immediate tensor value into storage layout, checking it against
// its declared type (element count, dtype and encoding must agree).
absl::StatusOr<Tensor> DecodeImmediateTensor(const CoreML::Specification::MILSpec::Value& value);
// Encodes a tensor as an immediate value the way Core ML tools do.
absl::StatusOr<CoreML::Specification::MILSpec::Value> EncodeImmediateTensor(const TensorView& t);
// A value referring to a blob.
CoreML::Specification::MILSpec::Value MakeBlobValue(ElementType type, absl::Span<const int64_t> shape,
                                                    absl::string_view file_name, uint64_t offset);

// Element-wise conversions of a tensor's values.
// Any numeric type -> float (integers exactly where representable).
absl::StatusOr<std::vector<float>> ToFloats(const TensorView& t);
// Any integer type -> int32 (sign-extended for int4/int8/...).
absl::StatusOr<std::vector<int32_t>> ToInts(const TensorView& t);

}  // namespace coremlz::format

#endif  // COREMLZ_FORMAT_TENSOR_H_
