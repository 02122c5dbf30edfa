#include "format/element_type.h"

#include <limits>

#include "absl/strings/str_cat.h"

namespace coremlz::format {
namespace {

struct TypeInfo {
  ElementType type;
  absl::string_view name;
  int bits;
  int mil;                       // MILSpec.DataType
  std::optional<BlobDType> blob;  // blob storage code, if storable
};

const TypeInfo kTypes[] = {
    {ElementType::kBool, "bool", 8, 1, std::nullopt},
    {ElementType::kString, "string", 0, 2, std::nullopt},
    {ElementType::kFloat8E4M3FN, "fp8e4m3fn", 8, 40, BlobDType::kFloat8E4M3FN},
    {ElementType::kFloat8E5M2, "fp8e5m2", 8, 41, BlobDType::kFloat8E5M2},
    {ElementType::kFloat16, "fp16", 16, 10, BlobDType::kFloat16},
    {ElementType::kBFloat16, "bf16", 16, 13, BlobDType::kBFloat16},
    {ElementType::kFloat32, "fp32", 32, 11, BlobDType::kFloat32},
    {ElementType::kFloat64, "fp64", 64, 12, std::nullopt},
    {ElementType::kInt4, "int4", 4, 25, BlobDType::kInt4},
    {ElementType::kInt8, "int8", 8, 21, BlobDType::kInt8},
    {ElementType::kInt16, "int16", 16, 22, BlobDType::kInt16},
    {ElementType::kInt32, "int32", 32, 23, BlobDType::kInt32},
    {ElementType::kInt64, "int64", 64, 24, std::nullopt},
    {ElementType::kUInt1, "uint1", 1, 37, BlobDType::kUInt1},
    {ElementType::kUInt2, "uint2", 2, 36, BlobDType::kUInt2},
    {ElementType::kUInt3, "uint3", 3, 39, BlobDType::kUInt3},
    {ElementType::kUInt4, "uint4", 4, 35, BlobDType::kUInt4},
    {ElementType::kUInt6, "uint6", 6, 38, BlobDType::kUInt6},
    {ElementType::kUInt8, "uint8", 8, 31, BlobDType::kUInt8},
    {ElementType::kUInt16, "uint16", 16, 32, BlobDType::kUInt16},
    {ElementType::kUInt32, "uint32", 32, 33, BlobDType::kUInt32},
    {ElementType::kUInt64, "uint64", 64, 34, std::nullopt},
};

const TypeInfo& Info(ElementType type) {
  for (const TypeInfo& info : kTypes) {
    if (info.type == type) return info;
  }
  return kTypes[0];  // unreachable: every enumerator is in the table
}

}  // namespace

int BitWidth(ElementType type) { return Info(type).bits; }

bool IsFloat(ElementType type) {
  switch (type) {
    case ElementType::kFloat8E4M3FN:
    case ElementType::kFloat8E5M2:
    case ElementType::kFloat16:
    case ElementType::kBFloat16:
    case ElementType::kFloat32:
    case ElementType::kFloat64:
      return true;
    default:
      return false;
  }
}

bool IsSigned(ElementType type) {
  switch (type) {
    case ElementType::kInt4:
    case ElementType::kInt8:
    case ElementType::kInt16:
    case ElementType::kInt32:
    case ElementType::kInt64:
      return true;
    default:
      return IsFloat(type);
  }
}

bool IsInteger(ElementType type) {
  return !IsFloat(type) && type != ElementType::kBool && type != ElementType::kString;
}

bool IsSubByte(ElementType type) {
  int bits = BitWidth(type);
  return bits > 0 && bits < 8;
}

absl::string_view ElementTypeName(ElementType type) { return Info(type).name; }

std::optional<ElementType> ElementTypeFromName(absl::string_view name) {
  for (const TypeInfo& info : kTypes) {
    if (info.name == name) return info.type;
  }
  return std::nullopt;
}

absl::StatusOr<uint64_t> StorageBytes(ElementType type, uint64_t count) {
  const uint64_t bits = static_cast<uint64_t>(BitWidth(type));
  if (bits == 0) return absl::InvalidArgumentError("strings have no fixed storage size");
  if (count > std::numeric_limits<uint64_t>::max() / bits) {
    return absl::InvalidArgumentError(absl::StrCat(count, " elements of ", ElementTypeName(type),
                                                   " overflow a 64-bit byte count"));
  }
  return (count * bits + 7) / 8;
}

std::optional<ElementType> FromMilDataType(int mil_data_type) {
  for (const TypeInfo& info : kTypes) {
    if (info.mil == mil_data_type) return info.type;
  }
  return std::nullopt;
}

int ToMilDataType(ElementType type) { return Info(type).mil; }

std::optional<ElementType> FromBlobDType(uint32_t code) {
  for (const TypeInfo& info : kTypes) {
    if (info.blob.has_value() && static_cast<uint32_t>(*info.blob) == code) return info.type;
  }
  return std::nullopt;
}

std::optional<BlobDType> ToBlobDType(ElementType type) { return Info(type).blob; }

}  // namespace coremlz::format
