#include "format/tensor.h"

#include <sys/mman.h>

#include "format/fp16.h"
#include "gtest/gtest.h"

namespace coremlz::format {
namespace {

TEST(TensorTest, ImmediateEncodingRoundTripsEveryStorableType) {
  for (ElementType t : {ElementType::kFloat16, ElementType::kFloat32, ElementType::kInt8, ElementType::kUInt8,
                        ElementType::kInt16, ElementType::kUInt16, ElementType::kInt32, ElementType::kUInt32,
                        ElementType::kInt4, ElementType::kUInt1, ElementType::kUInt2, ElementType::kUInt3,
                        ElementType::kUInt4, ElementType::kUInt6, ElementType::kInt64, ElementType::kBool,
                        ElementType::kFloat64}) {
    const Shape shape = {3, 5};
    auto bytes = StorageBytes(t, 15);
    ASSERT_TRUE(bytes.ok());
    std::string data(*bytes, '\0');
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 37 + 11) & 0xff);
    if (t == ElementType::kBool) for (char& c : data) c = c & 1;
    if (t == ElementType::kFloat16) for (size_t i = 1; i < data.size(); i += 2) data[i] &= 0x3f;  // finite
    if (t == ElementType::kFloat32) for (size_t i = 3; i < data.size(); i += 4) data[i] &= 0x3f;
    if (t == ElementType::kFloat64) for (size_t i = 7; i < data.size(); i += 8) data[i] &= 0x3f;
    if (IsSubByte(t)) {
      int spare = static_cast<int>(data.size() * 8 - 15 * BitWidth(t));
      data.back() = static_cast<char>(static_cast<unsigned char>(data.back()) & (0xff >> spare));
    }
    auto tensor = MakeTensor(t, shape, data);
    ASSERT_TRUE(tensor.ok()) << ElementTypeName(t);
    auto value = EncodeImmediateTensor(View(*tensor));
    ASSERT_TRUE(value.ok()) << ElementTypeName(t) << value.status();
    auto back = DecodeImmediateTensor(*value);
    ASSERT_TRUE(back.ok()) << ElementTypeName(t) << back.status();
    EXPECT_EQ(back->bytes, data) << ElementTypeName(t);
    EXPECT_EQ(back->shape, shape);
  }
}

TEST(TensorTest, ImmediateEncodingUsesCoreMlMembers) {
  auto fp32 = MakeTensor(ElementType::kFloat32, {2}, std::string(8, '\0'));
  EXPECT_TRUE(EncodeImmediateTensor(View(*fp32))->immediatevalue().tensor().has_floats());
  auto fp16 = MakeTensor(ElementType::kFloat16, {2}, std::string(4, '\0'));
  EXPECT_TRUE(EncodeImmediateTensor(View(*fp16))->immediatevalue().tensor().has_bytes());
  auto i32 = MakeTensor(ElementType::kInt32, {2}, std::string(8, '\0'));
  EXPECT_TRUE(EncodeImmediateTensor(View(*i32))->immediatevalue().tensor().has_ints());
  auto u32 = MakeTensor(ElementType::kUInt32, {2}, std::string(8, '\0'));
  EXPECT_TRUE(EncodeImmediateTensor(View(*u32))->immediatevalue().tensor().has_bytes());
}

TEST(TensorTest, DecodeRejectsMismatches) {
  auto t = MakeTensor(ElementType::kFloat32, {4}, std::string(16, '\0'));
  auto v = EncodeImmediateTensor(View(*t));
  ASSERT_TRUE(v.ok());
  auto bad = *v;
  bad.mutable_immediatevalue()->mutable_tensor()->mutable_floats()->add_values(1.f);
  EXPECT_NE(DecodeImmediateTensor(bad).status().message().find("holds 5 values"), std::string::npos);
  bad = *v;
  bad.mutable_type()->mutable_tensortype()->set_datatype(CoreML::Specification::MILSpec::FLOAT16);
  EXPECT_NE(DecodeImmediateTensor(bad).status().message().find("wrong TensorValue member"), std::string::npos);
  // A huge declared shape with tiny data must fail without allocating.
  bad = *v;
  bad.mutable_type()->mutable_tensortype()->mutable_dimensions(0)->mutable_constant()->set_size(uint64_t{1} << 61);
  EXPECT_FALSE(DecodeImmediateTensor(bad).ok());
}

TEST(TensorTest, ToFloatsAndInts) {
  std::string half(4, '\0');
  uint16_t a = FloatToHalf(1.5f), b = FloatToHalf(-2.0f);
  half[0] = static_cast<char>(a & 0xff); half[1] = static_cast<char>(a >> 8);
  half[2] = static_cast<char>(b & 0xff); half[3] = static_cast<char>(b >> 8);
  auto t = MakeTensor(ElementType::kFloat16, {2}, half);
  EXPECT_EQ(*ToFloats(View(*t)), (std::vector<float>{1.5f, -2.0f}));
  auto i4 = MakeTensor(ElementType::kInt4, {3}, std::string("\x8f\x07", 2));  // -1, -8, 7
  EXPECT_EQ(*ToInts(View(*i4)), (std::vector<int32_t>{-1, -8, 7}));
  auto u3 = MakeTensor(ElementType::kUInt3, {3}, std::string("\xfa\x00", 2));  // 2, 7, 3 (bits 010 111 11|0)
  EXPECT_EQ(*ToInts(View(*u3)), (std::vector<int32_t>{2, 7, 3}));
  EXPECT_FALSE(MakeTensor(ElementType::kUInt3, {3}, std::string(3, '\0')).ok());
}

// A protobuf repeated field holds at most INT_MAX entries: a larger tensor is
// refused as an immediate value (it belongs in blob storage) instead of being
// truncated by a cast to int. The bytes are an untouched anonymous mapping.
TEST(TensorTest, ImmediateValuesPastIntMaxElementsAreRefused) {
  const uint64_t count = (uint64_t{1} << 31) + 8;  // uint1: 256 MB + 1 byte
  const size_t bytes = static_cast<size_t>((count + 7) / 8);
  void* p = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  TensorView big{ElementType::kUInt1, {static_cast<int64_t>(count)}, absl::string_view(static_cast<const char*>(p), bytes)};
  auto value = EncodeImmediateTensor(big);
  EXPECT_EQ(value.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(value.status().message().find("too large for an immediate value"), std::string::npos) << value.status();
  ::munmap(p, bytes);
  // A small one of the same type still encodes.
  EXPECT_TRUE(EncodeImmediateTensor(TensorView{ElementType::kUInt1, {16}, absl::string_view("\x01\x02", 2)}).ok());
}

}  // namespace
}  // namespace coremlz::format
