// Sizes on command lines (--cache-max-bytes, --max-size).
#include "common/byte_size.h"

#include "gtest/gtest.h"

namespace coremlz {
namespace {

TEST(ByteSizeTest, AcceptsWhatPeopleType) {
  EXPECT_EQ(*ParseByteSize("1048576"), 1048576u);
  EXPECT_EQ(*ParseByteSize("300K"), 300u * 1024);
  EXPECT_EQ(*ParseByteSize("20M"), 20u << 20);
  EXPECT_EQ(*ParseByteSize("10G"), uint64_t{10} << 30);
  EXPECT_EQ(*ParseByteSize("1.5GiB"), uint64_t{3} << 29);
  EXPECT_EQ(*ParseByteSize(" 2mb "), 2u << 20);
  EXPECT_EQ(*ParseByteSize("1T"), uint64_t{1} << 40);
  EXPECT_EQ(*ParseByteSize("512B"), 512u);
}

TEST(ByteSizeTest, RefusesTheRest) {
  for (const char* bad : {"", "lots", "-5M", "0", "M", "5X", "1e30", "nan", "B"}) {
    auto size = ParseByteSize(bad);
    EXPECT_FALSE(size.ok()) << bad;
    EXPECT_EQ(size.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace coremlz
