#include "format/tensor.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/byte_order.h"
#include "common/status_macros.h"
#include "format/fp16.h"
#include "format/sub_byte.h"

namespace coremlz::format {
namespace mil = CoreML::Specification::MILSpec;

absl::StatusOr<uint64_t> ElementCount(absl::Span<const int64_t> shape) {
  uint64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0) return absl::InvalidArgumentError(absl::StrCat("negative dimension in ", ShapeString(shape)));
    if (d != 0 && count > (uint64_t{1} << 62) / static_cast<uint64_t>(d)) {
      return absl::InvalidArgumentError(absl::StrCat("shape ", ShapeString(shape),
                                                     " has more than 2^62 elements"));
    }
    count *= static_cast<uint64_t>(d);
  }
  return count;
}

std::string ShapeString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

uint64_t Tensor::element_count() const {
  auto n = ElementCount(shape);
  return n.ok() ? *n : 0;
}

absl::StatusOr<Tensor> MakeTensor(ElementType type, Shape shape, std::string bytes) {
  ASSIGN_OR_RETURN(uint64_t count, ElementCount(shape));
  ASSIGN_OR_RETURN(uint64_t want, StorageBytes(type, count));
  if (want != bytes.size()) {
    return absl::InvalidArgumentError(absl::StrCat(ElementTypeName(type), ShapeString(shape), " needs ",
                                                   want, " bytes, got ", bytes.size()));
  }
  return Tensor{type, std::move(shape), std::move(bytes)};
}

absl::StatusOr<TensorTypeInfo> ReadTensorType(const mil::ValueType& type) {
  if (!type.has_tensortype()) return absl::InvalidArgumentError("value is not a tensor");
  const mil::TensorType& tt = type.tensortype();
  std::optional<ElementType> et = FromMilDataType(tt.datatype());
  if (!et.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat("unknown MIL data type ", tt.datatype()));
  }
  if (tt.rank() != tt.dimensions_size()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor rank ", tt.rank(), " but ",
                                                   tt.dimensions_size(), " dimensions"));
  }
  TensorTypeInfo info{*et, {}};
  for (const mil::Dimension& d : tt.dimensions()) {
    if (!d.has_constant()) return absl::InvalidArgumentError("tensor has a non-constant dimension");
    if (d.constant().size() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::InvalidArgumentError("dimension does not fit in int64");
    }
    info.shape.push_back(static_cast<int64_t>(d.constant().size()));
  }
  RETURN_IF_ERROR(ElementCount(info.shape).status());
  return info;
}

mil::ValueType MakeTensorType(ElementType type, absl::Span<const int64_t> shape) {
  mil::ValueType vt;
  mil::TensorType* tt = vt.mutable_tensortype();
  tt->set_datatype(static_cast<mil::DataType>(ToMilDataType(type)));
  tt->set_rank(static_cast<int64_t>(shape.size()));
  for (int64_t d : shape) tt->add_dimensions()->mutable_constant()->set_size(static_cast<uint64_t>(d));
  return vt;
}

namespace {

// How Core ML tools encode each dtype in an immediate TensorValue.
enum class Encoding { kFloats, kDoubles, kInts, kLongInts, kBools, kBytes, kStrings };

absl::StatusOr<Encoding> ImmediateEncoding(ElementType t) {
  switch (t) {
    case ElementType::kFloat32: return Encoding::kFloats;
    case ElementType::kFloat64: return Encoding::kDoubles;
    case ElementType::kInt16:
    case ElementType::kUInt16:
    case ElementType::kInt32: return Encoding::kInts;
    case ElementType::kInt64:
    case ElementType::kUInt64: return Encoding::kLongInts;
    case ElementType::kBool: return Encoding::kBools;
    case ElementType::kString: return Encoding::kStrings;
    case ElementType::kFloat16:
    case ElementType::kInt4:
    case ElementType::kInt8:
    case ElementType::kUInt1:
    case ElementType::kUInt2:
    case ElementType::kUInt3:
    case ElementType::kUInt4:
    case ElementType::kUInt6:
    case ElementType::kUInt8:
    case ElementType::kUInt32: return Encoding::kBytes;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(ElementTypeName(t), " has no immediate value encoding"));
  }
}

template <typename Int>
void AppendLittleEndian(std::string* out, Int v) {
  for (size_t i = 0; i < sizeof(Int); ++i) out->push_back(static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff));
}

}  // namespace

absl::StatusOr<Tensor> DecodeImmediateTensor(const mil::Value& value) {
  if (!value.has_immediatevalue() || !value.immediatevalue().has_tensor()) {
    return absl::InvalidArgumentError("value is not an immediate tensor");
  }
  ASSIGN_OR_RETURN(TensorTypeInfo info, ReadTensorType(value.type()));
  ASSIGN_OR_RETURN(uint64_t count, ElementCount(info.shape));
  const mil::TensorValue& tv = value.immediatevalue().tensor();
  Tensor t;
  t.type = info.type;
  t.shape = info.shape;
  auto count_mismatch = [&](size_t got) {
    return absl::InvalidArgumentError(absl::StrCat("immediate ", ElementTypeName(info.type),
                                                   ShapeString(info.shape), " holds ", got,
                                                   " values, expected ", count));
  };
  auto wrong_member = [&]() {
    return absl::InvalidArgumentError(absl::StrCat("immediate ", ElementTypeName(info.type),
                                                   " value uses the wrong TensorValue member"));
  };
  ASSIGN_OR_RETURN(Encoding enc, ImmediateEncoding(info.type));
  switch (enc) {
    case Encoding::kFloats: {
      if (!tv.has_floats()) return wrong_member();
      const auto& v = tv.floats().values();
      if (static_cast<uint64_t>(v.size()) != count) return count_mismatch(v.size());
      t.bytes.resize(4 * count);
      std::memcpy(t.bytes.data(), v.data(), 4 * count);  // x86/arm hosts are little-endian
      break;
    }
    case Encoding::kDoubles: {
      if (!tv.has_doubles()) return wrong_member();
      const auto& v = tv.doubles().values();
      if (static_cast<uint64_t>(v.size()) != count) return count_mismatch(v.size());
      t.bytes.resize(8 * count);
      std::memcpy(t.bytes.data(), v.data(), 8 * count);
      break;
    }
    case Encoding::kInts: {
      if (!tv.has_ints()) return wrong_member();
      const auto& v = tv.ints().values();
      if (static_cast<uint64_t>(v.size()) != count) return count_mismatch(v.size());
      t.bytes.reserve(count * BitWidth(info.type) / 8);
      for (int32_t x : v) {
        if (info.type == ElementType::kInt32) {
          AppendLittleEndian<uint32_t>(&t.bytes, static_cast<uint32_t>(x));
        } else {
          AppendLittleEndian<uint16_t>(&t.bytes, static_cast<uint16_t>(x));
        }
      }
      break;
    }
    case Encoding::kLongInts: {
      if (!tv.has_longints()) return wrong_member();
      const auto& v = tv.longints().values();
      if (static_cast<uint64_t>(v.size()) != count) return count_mismatch(v.size());
      for (int64_t x : v) AppendLittleEndian<uint64_t>(&t.bytes, static_cast<uint64_t>(x));
      break;
    }
    case Encoding::kBools: {
      if (!tv.has_bools()) return wrong_member();
      const auto& v = tv.bools().values();
      if (static_cast<uint64_t>(v.size()) != count) return count_mismatch(v.size());
      for (bool b : v) t.bytes.push_back(b ? 1 : 0);
      break;
    }
    case Encoding::kBytes: {
      if (!tv.has_bytes()) return wrong_member();
      ASSIGN_OR_RETURN(uint64_t want, StorageBytes(info.type, count));
      if (tv.bytes().values().size() != want) {
        return absl::InvalidArgumentError(absl::StrCat(
            "immediate ", ElementTypeName(info.type), ShapeString(info.shape), " has ",
            tv.bytes().values().size(), " bytes, expected ", want));
      }
      t.bytes = tv.bytes().values();
      break;
    }
    case Encoding::kStrings:
      return absl::InvalidArgumentError("string tensors have no dense storage");
  }
  return t;
}

absl::StatusOr<mil::Value> EncodeImmediateTensor(const TensorView& t) {
  ASSIGN_OR_RETURN(uint64_t count, ElementCount(t.shape));
  ASSIGN_OR_RETURN(uint64_t want, StorageBytes(t.type, count));
  if (want != t.bytes.size()) return absl::InvalidArgumentError("tensor bytes do not match its shape");
  // A protobuf field holds at most INT_MAX entries (and a message 2 GB):
  // larger tensors belong in blob storage, whose offsets are 64-bit.
  if (count > static_cast<uint64_t>(std::numeric_limits<int>::max()) || want > (uint64_t{1} << 31)) {
    return absl::InvalidArgumentError(absl::StrCat("a tensor of ", count, " elements (", want,
                                                   " bytes) is too large for an immediate value"));
  }
  mil::Value value;
  *value.mutable_type() = MakeTensorType(t.type, t.shape);
  mil::TensorValue* tv = value.mutable_immediatevalue()->mutable_tensor();
  ASSIGN_OR_RETURN(Encoding enc, ImmediateEncoding(t.type));
  const char* p = t.bytes.data();
  switch (enc) {
    case Encoding::kFloats: {
      auto* v = tv->mutable_floats()->mutable_values();
      v->Resize(static_cast<int>(count), 0.f);
      std::memcpy(v->mutable_data(), p, 4 * count);
      break;
    }
    case Encoding::kDoubles: {
      auto* v = tv->mutable_doubles()->mutable_values();
      v->Resize(static_cast<int>(count), 0.0);
      std::memcpy(v->mutable_data(), p, 8 * count);
      break;
    }
    case Encoding::kInts: {
      auto* v = tv->mutable_ints()->mutable_values();
      for (uint64_t i = 0; i < count; ++i) {
        int32_t x;
        if (t.type == ElementType::kInt32) {
          x = static_cast<int32_t>(DecodeFixed32(p + 4 * i));
        } else {
          uint16_t u = static_cast<uint16_t>(static_cast<unsigned char>(p[2 * i]) |
                                             (static_cast<unsigned char>(p[2 * i + 1]) << 8));
          x = t.type == ElementType::kInt16 ? static_cast<int16_t>(u) : static_cast<int32_t>(u);
        }
        v->Add(x);
      }
      break;
    }
    case Encoding::kLongInts: {
      auto* v = tv->mutable_longints()->mutable_values();
      for (uint64_t i = 0; i < count; ++i) v->Add(static_cast<int64_t>(DecodeFixed64(p + 8 * i)));
      break;
    }
    case Encoding::kBools: {
      auto* v = tv->mutable_bools()->mutable_values();
      for (uint64_t i = 0; i < count; ++i) v->Add(p[i] != 0);
      break;
    }
    case Encoding::kBytes:
      tv->mutable_bytes()->set_values(t.bytes.data(), t.bytes.size());
      break;
    case Encoding::kStrings:
      return absl::InvalidArgumentError("string tensors have no dense storage");
  }
  return value;
}

mil::Value MakeBlobValue(ElementType type, absl::Span<const int64_t> shape,
                         absl::string_view file_name, uint64_t offset) {
  mil::Value value;
  *value.mutable_type() = MakeTensorType(type, shape);
  value.mutable_blobfilevalue()->set_filename(std::string(file_name));
  value.mutable_blobfilevalue()->set_offset(offset);
  return value;
}

absl::StatusOr<std::vector<float>> ToFloats(const TensorView& t) {
  ASSIGN_OR_RETURN(uint64_t count, ElementCount(t.shape));
  ASSIGN_OR_RETURN(uint64_t want, StorageBytes(t.type, count));
  if (want != t.bytes.size()) return absl::InvalidArgumentError("tensor bytes do not match its shape");
  const char* p = t.bytes.data();
  if (t.type == ElementType::kFloat16) {
    // Little-endian host (as for fp32 below): halves are copied out and
    // widened in bulk chunk by chunk, and appended - the output is written
    // once, never zero-filled first.
    std::vector<float> out;
    out.reserve(count);
    uint16_t halves[2048];
    float widened[2048];
    for (uint64_t i = 0; i < count; i += 2048) {
      const uint64_t n = std::min<uint64_t>(2048, count - i);
      std::memcpy(halves, p + 2 * i, 2 * n);
      HalfToFloat(absl::MakeConstSpan(halves, n), absl::MakeSpan(widened, n));
      out.insert(out.end(), widened, widened + n);
    }
    return out;
  }
  if (t.type == ElementType::kFloat32) {
    // Appended from an L1 buffer, like fp16 above: never zero-filled first.
    std::vector<float> out;
    out.reserve(count);
    float chunk[2048];
    for (uint64_t i = 0; i < count; i += 2048) {
      const uint64_t n = std::min<uint64_t>(2048, count - i);
      std::memcpy(chunk, p + 4 * i, 4 * n);
      out.insert(out.end(), chunk, chunk + n);
    }
    return out;
  }
  std::vector<float> out(count);
  switch (t.type) {
    case ElementType::kBFloat16:
      for (uint64_t i = 0; i < count; ++i) {
        uint32_t bits = (static_cast<uint32_t>(static_cast<unsigned char>(p[2 * i])) |
                         (static_cast<uint32_t>(static_cast<unsigned char>(p[2 * i + 1])) << 8))
                        << 16;
        std::memcpy(&out[i], &bits, 4);
      }
      return out;
    case ElementType::kFloat64:
      for (uint64_t i = 0; i < count; ++i) {
        double d;
        std::memcpy(&d, p + 8 * i, 8);
        out[i] = static_cast<float>(d);
      }
      return out;
    default:
      break;
  }
  if (IsInteger(t.type) && BitWidth(t.type) <= 32) {
    ASSIGN_OR_RETURN(std::vector<int32_t> ints, ToInts(t));
    for (uint64_t i = 0; i < count; ++i) out[i] = static_cast<float>(ints[i]);
    return out;
  }
  return absl::InvalidArgumentError(absl::StrCat("cannot read ", ElementTypeName(t.type), " as float"));
}

absl::StatusOr<std::vector<int32_t>> ToInts(const TensorView& t) {
  ASSIGN_OR_RETURN(uint64_t count, ElementCount(t.shape));
  ASSIGN_OR_RETURN(uint64_t want, StorageBytes(t.type, count));
  if (want != t.bytes.size()) return absl::InvalidArgumentError("tensor bytes do not match its shape");
  std::vector<int32_t> out(count);
  const auto* p = reinterpret_cast<const unsigned char*>(t.bytes.data());
  if (IsSubByte(t.type)) {
    std::vector<uint8_t> codes(count);
    RETURN_IF_ERROR(UnpackBits(t.bytes, BitWidth(t.type), absl::MakeSpan(codes)));
    for (uint64_t i = 0; i < count; ++i) {
      out[i] = t.type == ElementType::kInt4 ? SignExtend4(codes[i]) : codes[i];
    }
    return out;
  }
  switch (t.type) {
    case ElementType::kInt8:
      for (uint64_t i = 0; i < count; ++i) out[i] = static_cast<int8_t>(p[i]);
      return out;
    case ElementType::kUInt8:
    case ElementType::kBool:
      for (uint64_t i = 0; i < count; ++i) out[i] = p[i];
      return out;
    case ElementType::kInt16:
      for (uint64_t i = 0; i < count; ++i) out[i] = static_cast<int16_t>(p[2 * i] | (p[2 * i + 1] << 8));
      return out;
    case ElementType::kUInt16:
      for (uint64_t i = 0; i < count; ++i) out[i] = p[2 * i] | (p[2 * i + 1] << 8);
      return out;
    case ElementType::kInt32:
      for (uint64_t i = 0; i < count; ++i) out[i] = static_cast<int32_t>(DecodeFixed32(p + 4 * i));
      return out;
    case ElementType::kUInt32:
      for (uint64_t i = 0; i < count; ++i) {
        uint32_t u = DecodeFixed32(p + 4 * i);
        if (u > static_cast<uint32_t>(std::numeric_limits<int32_t>::max())) {
          return absl::InvalidArgumentError(absl::StrCat("uint32 value ", u, " does not fit in int32"));
        }
        out[i] = static_cast<int32_t>(u);
      }
      return out;
    default:
      return absl::InvalidArgumentError(absl::StrCat("cannot read ", ElementTypeName(t.type), " as integers"));
  }
}

}  // namespace coremlz::format
