#include "format/sub_byte.h"

#include <random>
#include <vector>

#include "format/nn_bit_packing.h"
#include "gtest/gtest.h"

namespace coremlz::format {
namespace {

// Reference: materialise the bit stream one bit at a time.
std::string ReferencePackLsbFirst(const std::vector<uint8_t>& codes, int nbits) {
  std::vector<int> stream;
  for (uint8_t c : codes)
    for (int b = 0; b < nbits; ++b) stream.push_back((c >> b) & 1);
  std::string out((stream.size() + 7) / 8, '\0');
  for (size_t i = 0; i < stream.size(); ++i)
    if (stream[i]) out[i / 8] = static_cast<char>(out[i / 8] | (1 << (i % 8)));
  return out;
}

std::string ReferencePackMsbFirst(const std::vector<uint8_t>& codes, int nbits) {
  std::vector<int> stream;
  for (uint8_t c : codes)
    for (int b = nbits - 1; b >= 0; --b) stream.push_back((c >> b) & 1);
  std::string out((stream.size() + 7) / 8, '\0');
  for (size_t i = 0; i < stream.size(); ++i)
    if (stream[i]) out[i / 8] = static_cast<char>(out[i / 8] | (0x80 >> (i % 8)));
  return out;
}

class SubByteTest : public ::testing::TestWithParam<int> {};

TEST_P(SubByteTest, PackMatchesReferenceAndRoundTrips) {
  const int nbits = GetParam();
  std::mt19937 rng(nbits);
  for (size_t n : {0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4099}) {
    std::vector<uint8_t> codes(n);
    for (auto& c : codes) c = static_cast<uint8_t>(rng() & ((1u << nbits) - 1));
    const std::string packed = PackBits(codes, nbits);
    ASSERT_EQ(packed, ReferencePackLsbFirst(codes, nbits)) << "n=" << n;
    ASSERT_EQ(packed.size(), PackedBytes(n, nbits));
    std::vector<uint8_t> back(n);
    ASSERT_TRUE(UnpackBits(packed, nbits, absl::MakeSpan(back)).ok());
    ASSERT_EQ(back, codes);

    const std::string nn = PackNeuralNetworkCodes(codes, nbits);
    ASSERT_EQ(nn, ReferencePackMsbFirst(codes, nbits)) << "n=" << n;
    std::vector<uint8_t> nn_back(n);
    ASSERT_TRUE(UnpackNeuralNetworkCodes(nn, nbits, absl::MakeSpan(nn_back)).ok());
    ASSERT_EQ(nn_back, codes);
  }
}

TEST_P(SubByteTest, HighBitsAreMaskedAndSizesChecked) {
  const int nbits = GetParam();
  std::vector<uint8_t> codes = {0xff, 0xff, 0xff};
  std::string packed = PackBits(codes, nbits);
  std::vector<uint8_t> back(3);
  ASSERT_TRUE(UnpackBits(packed, nbits, absl::MakeSpan(back)).ok());
  for (uint8_t b : back) EXPECT_EQ(b, (1u << nbits) - 1);
  packed.push_back('\0');
  EXPECT_FALSE(UnpackBits(packed, nbits, absl::MakeSpan(back)).ok());
  EXPECT_FALSE(UnpackBits("", nbits, absl::MakeSpan(back)).ok());
}

INSTANTIATE_TEST_SUITE_P(AllWidths, SubByteTest, ::testing::Values(1, 2, 3, 4, 6, 8));

TEST(SubByteTest, DocumentedExample) {
  // 2-bit indices [0, 3, 2, 1, 3]: byte 0 = 0b01'10'11'00, byte 1 = 0b000000'11.
  EXPECT_EQ(PackBits(std::vector<uint8_t>{0, 3, 2, 1, 3}, 2), std::string("\x6c\x03", 2));
}

TEST(SubByteTest, Int4SignExtension) {
  EXPECT_EQ(SignExtend4(0x0), 0);
  EXPECT_EQ(SignExtend4(0x7), 7);
  EXPECT_EQ(SignExtend4(0x8), -8);
  EXPECT_EQ(SignExtend4(0xf), -1);
  EXPECT_EQ(SignExtend4(0x9), -7);
}

}  // namespace
}  // namespace coremlz::format
