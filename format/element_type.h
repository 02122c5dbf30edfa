// Element (scalar) types of Core ML tensors, and their two encodings: the MIL
// proto's DataType and the blob storage file's dtype code.
#ifndef COREMLZ_FORMAT_ELEMENT_TYPE_H_
#define COREMLZ_FORMAT_ELEMENT_TYPE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace coremlz::format {

enum class ElementType {
  kBool,
  kString,
  kFloat8E4M3FN,
  kFloat8E5M2,
  kFloat16,
  kBFloat16,
  kFloat32,
  kFloat64,
  kInt4,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kUInt1,
  kUInt2,
  kUInt3,
  kUInt4,
  kUInt6,
  kUInt8,
  kUInt16,
  kUInt32,
  kUInt64,
};

// Storage width of one element in bits (0 for strings).
int BitWidth(ElementType type);
bool IsFloat(ElementType type);
bool IsSigned(ElementType type);
bool IsInteger(ElementType type);
bool IsSubByte(ElementType type);
// Lower-case name as coremltools prints it: "fp16", "fp32", "uint4", "int8", ...
absl::string_view ElementTypeName(ElementType type);
std::optional<ElementType> ElementTypeFromName(absl::string_view name);

// Bytes needed to store `count` elements (sub-byte types packed, rounded up).
// Fails on overflow.
absl::StatusOr<uint64_t> StorageBytes(ElementType type, uint64_t count);

// MIL proto DataType numbers (CoreML.Specification.MILSpec.DataType).
std::optional<ElementType> FromMilDataType(int mil_data_type);
int ToMilDataType(ElementType type);

// Blob storage dtype codes (weight.bin blob_metadata.mil_dtype).
enum class BlobDType : uint32_t {
  kFloat16 = 1,
  kFloat32 = 2,
  kUInt8 = 3,
  kInt8 = 4,
  kBFloat16 = 5,
  kInt16 = 6,
  kUInt16 = 7,
  kInt4 = 8,
  kUInt1 = 9,
  kUInt2 = 10,
  kUInt4 = 11,
  kUInt3 = 12,
  kUInt6 = 13,
  kInt32 = 14,
  kUInt32 = 15,
  kFloat8E4M3FN = 16,
  kFloat8E5M2 = 17,
};
std::optional<ElementType> FromBlobDType(uint32_t code);
// Types that blob storage can hold (no bool, string, 64-bit types).
std::optional<BlobDType> ToBlobDType(ElementType type);

}  // namespace coremlz::format

#endif  // COREMLZ_FORMAT_ELEMENT_TYPE_H_
