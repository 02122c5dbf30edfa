// The names of config values: every printed name parses back to its value,
// in any case, and nothing else parses.
#include "engine/config_names.h"

#include "gtest/gtest.h"

namespace coremlz::engine {
namespace {

TEST(ConfigNamesTest, GranularityRoundTrips) {
  for (Granularity g : kGranularities) {
    EXPECT_EQ(ParseGranularity(GranularityName(g)), g) << GranularityName(g);
  }
  EXPECT_EQ(GranularityName(Granularity::kPerGroupedChannel), "per_grouped_channel");
  EXPECT_EQ(ParseGranularity("PER_BLOCK"), Granularity::kPerBlock);
  EXPECT_EQ(ParseGranularity("per-block"), std::nullopt);  // dashes are the CLI's own
  EXPECT_EQ(ParseGranularity(""), std::nullopt);
}

TEST(ConfigNamesTest, PaletteModeRoundTrips) {
  using M = PalettizerConfig::Mode;
  for (M m : {M::kKMeans, M::kUniform, M::kUnique, M::kCustom}) {
    EXPECT_EQ(ParsePaletteMode(PaletteModeName(m)), m) << PaletteModeName(m);
  }
  EXPECT_EQ(PaletteModeName(M::kKMeans), "kmeans");
  EXPECT_EQ(ParsePaletteMode("KMEANS"), M::kKMeans);
  EXPECT_EQ(ParsePaletteMode("k-means"), std::nullopt);
}

TEST(ConfigNamesTest, QuantModeRoundTrips) {
  EXPECT_EQ(QuantModeName(true), "linear_symmetric");
  EXPECT_EQ(QuantModeName(false), "linear");
  EXPECT_EQ(QuantModeIsSymmetric("LINEAR_SYMMETRIC"), true);
  EXPECT_EQ(QuantModeIsSymmetric("linear"), false);
  EXPECT_EQ(QuantModeIsSymmetric("symmetric"), std::nullopt);  // a CLI alias, not a config name
}

TEST(ConfigNamesTest, QuantDtypeRoundTrips) {
  for (int bits : {4, 8}) {
    for (bool is_signed : {true, false}) {
      std::optional<QuantDtype> d = ParseQuantDtype(QuantDtypeName(bits, is_signed));
      ASSERT_TRUE(d.has_value()) << QuantDtypeName(bits, is_signed);
      EXPECT_EQ(d->bits, bits);
      EXPECT_EQ(d->is_signed, is_signed);
    }
  }
  EXPECT_EQ(QuantDtypeName(4, false), "uint4");
  EXPECT_EQ(QuantDtypeName(2, true), "int2");  // printable, for messages about invalid configs
  EXPECT_EQ(ParseQuantDtype("int2"), std::nullopt);
  std::optional<QuantDtype> upper = ParseQuantDtype("UINT8");
  ASSERT_TRUE(upper.has_value());
  EXPECT_EQ(upper->bits, 8);
  EXPECT_FALSE(upper->is_signed);
}

TEST(ConfigNamesTest, ConfigTypeRoundTrips) {
  for (const OpConfig& c : {OpConfig(LinearQuantizerConfig()), OpConfig(PalettizerConfig()),
                            OpConfig(ThresholdPrunerConfig()), OpConfig(MagnitudePrunerConfig()),
                            OpConfig(Fp16Config())}) {
    std::optional<OpConfig> parsed = DefaultConfigOfType(ConfigTypeName(c));
    ASSERT_TRUE(parsed.has_value()) << ConfigTypeName(c);
    EXPECT_EQ(parsed->index(), c.index());
    EXPECT_EQ(ConfigKey(*parsed), ConfigKey(c));  // every parameter at its default
  }
  EXPECT_EQ(ConfigTypeName(OpConfig(PalettizerConfig())), "OpPalettizerConfig");
  EXPECT_EQ(DefaultConfigOfType("oppalettizerconfig"), std::nullopt);  // class names are exact
}

}  // namespace
}  // namespace coremlz::engine
