#include "engine/param_tensors.h"

#include <algorithm>
#include <cstring>

#include "format/fp16.h"
#include "format/sub_byte.h"

namespace coremlz::engine {
using format::ElementType;
using format::Shape;
using format::Tensor;

ElementType UIntType(int bits) {
  switch (bits) {
    case 1: return ElementType::kUInt1;
    case 2: return ElementType::kUInt2;
    case 3: return ElementType::kUInt3;
    case 4: return ElementType::kUInt4;
    case 6: return ElementType::kUInt6;
    default: return ElementType::kUInt8;
  }
}

Tensor CodesTensor(ElementType type, Shape shape, absl::Span<const uint8_t> codes) {
  Tensor t;
  t.type = type;
  t.shape = std::move(shape);
  const int bits = format::BitWidth(type);
  t.bytes = bits == 8 ? std::string(reinterpret_cast<const char*>(codes.data()), codes.size()) : format::PackBits(codes, bits);
  return t;
}

Tensor MakeFloatTensor(ElementType type, Shape shape, const std::vector<float>& values) {
  Tensor t;
  t.type = type;
  t.shape = std::move(shape);
  if (type == ElementType::kFloat16) {
    t.bytes.resize(values.size() * 2);
    uint16_t halves[4096];  // narrowed in bulk, stored little-endian
    for (size_t i = 0; i < values.size(); i += 4096) {
      const size_t n = std::min<size_t>(4096, values.size() - i);
      format::FloatToHalf(absl::MakeConstSpan(values.data() + i, n), absl::MakeSpan(halves, n));
      std::memcpy(&t.bytes[2 * i], halves, 2 * n);
    }
  } else {
    t.bytes.resize(values.size() * 4);
    std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  }
  return t;
}

Tensor Int32Scalar(int32_t v) {
  Tensor t;
  t.type = ElementType::kInt32;
  t.bytes.resize(4);
  std::memcpy(t.bytes.data(), &v, 4);
  return t;
}

Tensor ShapeTensor(const Shape& shape) {
  Tensor t;
  t.type = ElementType::kUInt32;
  t.shape = {static_cast<int64_t>(shape.size())};
  for (int64_t d : shape) {
    uint32_t u = static_cast<uint32_t>(d);
    t.bytes.append(reinterpret_cast<const char*>(&u), 4);
  }
  return t;
}

}  // namespace coremlz::engine
