// .npy reading and writing: round trips, the layouts numpy itself writes
// (built byte by byte here from the format's definition), and bad files.
#include "execute/npy.h"

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "format/fp16.h"
#include "gtest/gtest.h"

namespace coremlz::execute {
namespace {

// A .npy as numpy writes it: magic, version, header length, header padded
// with spaces to a 64-byte boundary ending in '\n', then the data.
std::string Npy(const std::string& dict, const std::string& data, int major = 1) {
  std::string header = dict;
  const size_t prefix = major == 1 ? 10 : 12;
  while ((prefix + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  if (major == 1) {
    const uint16_t n = static_cast<uint16_t>(header.size());
    out.append(reinterpret_cast<const char*>(&n), 2);
  } else {
    const uint32_t n = static_cast<uint32_t>(header.size());
    out.append(reinterpret_cast<const char*>(&n), 4);
  }
  return out + header + data;
}

template <typename T>
std::string Bytes(std::vector<T> v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

TEST(NpyTest, RoundTripsEveryComputeType) {
  for (const Tensor& t : {Tensor::Float({2, 3}, {1, -2, 3.5f, 0, 1e-9f, -7}), Tensor::Int({4}, {1, -2, 3, 2147483647}),
                          Tensor::Bool({2, 2}, {1, 0, 0, 1}), Tensor::FloatScalar(2.5f), Tensor::Float({0, 3}, {})}) {
    auto bytes = SerializeNpy(t);
    ASSERT_TRUE(bytes.ok());
    EXPECT_EQ((bytes->size() - t.size() * (t.dtype() == DType::kBool ? 1 : 4)) % 64, 0u) << "data 64-byte aligned";
    auto back = ParseNpy(*bytes, "t.npy");
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->dtype(), t.dtype());
    EXPECT_EQ(back->shape(), t.shape());
    for (int64_t i = 0; i < t.size(); ++i) EXPECT_EQ(back->AsDouble(i), t.AsDouble(i));
  }
}

TEST(NpyTest, WritesStringsAsNumpyFixedWidthUnicode) {
  // np.save of np.array(["cat", "\u00e9lan"]): '<U4', UTF-32LE, zero padded.
  auto bytes = SerializeNpy(Tensor::String({2}, {"cat", "\xc3\xa9lan"}));
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const std::string want = Npy("{'descr': '<U4', 'fortran_order': False, 'shape': (2,), }",
                               Bytes<uint32_t>({'c', 'a', 't', 0, 0xe9, 'l', 'a', 'n'}));
  EXPECT_EQ(*bytes, want);
  // A scalar label; a byte that is not UTF-8 stands for itself.
  bytes = SerializeNpy(Tensor::String({}, {"a\xff"}));
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, Npy("{'descr': '<U2', 'fortran_order': False, 'shape': (), }", Bytes<uint32_t>({'a', 0xff})));
}

TEST(NpyTest, ReadsWhatNumpyWrites) {
  // np.save of float16, float64, int64, uint8 and a 1-D shape "(3,)".
  std::vector<uint16_t> halves = {format::FloatToHalf(1.5f), format::FloatToHalf(-2.f), format::FloatToHalf(0.25f)};
  auto f16 = ParseNpy(Npy("{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }", Bytes(halves)), "h");
  ASSERT_TRUE(f16.ok()) << f16.status();
  EXPECT_EQ(f16->shape(), Shape({3}));
  EXPECT_EQ(f16->floats()[1], -2.f);
  auto f64 = ParseNpy(Npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }", Bytes<double>({0.5, 3})), "d");
  ASSERT_TRUE(f64.ok());
  EXPECT_EQ(f64->floats()[1], 3.f);
  auto i64 = ParseNpy(Npy("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", Bytes<int64_t>({7, -9}), 2), "i");
  ASSERT_TRUE(i64.ok()) << i64.status();
  EXPECT_EQ(i64->dtype(), DType::kInt32);
  EXPECT_EQ(i64->ints()[1], -9);
  auto u8 = ParseNpy(Npy("{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }", "\xff\x01"), "u");
  ASSERT_TRUE(u8.ok());
  EXPECT_EQ(u8->ints()[0], 255);
  auto scalar = ParseNpy(Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", Bytes<float>({4})), "s");
  ASSERT_TRUE(scalar.ok());
  EXPECT_TRUE(scalar->shape().empty());
}

TEST(NpyTest, RefusesWhatItCannotRepresentFaithfully) {
  const std::string data = Bytes<float>({1, 2});
  struct Case {
    std::string bytes, why;
  } cases[] = {
      {"not npy at all", "magic"},
      {Npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", data), "Fortran"},
      {Npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", data), "big-endian"},
      {Npy("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", data), "dtype"},
      {Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", data), "bytes"},
      {Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", data), "dimension"},
      {Npy("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", Bytes<int64_t>({int64_t{1} << 40})), "int32"},
      {Npy("{'descr': '<f4', 'fortran_order': False, }", data), "shape"},
      {Npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }", data), "large"},
      {std::string("\x93NUMPY\x01\x00\xff\x7f", 10), "truncated"},
  };
  for (const Case& c : cases) {
    auto t = ParseNpy(c.bytes, "in.npy");
    ASSERT_FALSE(t.ok()) << c.why;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << c.why;
    EXPECT_NE(t.status().message().find("in.npy"), std::string::npos) << t.status();
    EXPECT_NE(absl::AsciiStrToLower(t.status().message()).find(absl::AsciiStrToLower(c.why)), std::string::npos)
        << c.why << ": " << t.status();
  }
}

}  // namespace
}  // namespace coremlz::execute
