// The compression config reader: coremltools' shapes and defaults, the
// errors a caller sees, and the YAML round trip the service relies on to
// forward configs to workers.
#include <string>

#include "absl/strings/match.h"
#include "engine/config.h"
#include "engine/config_parse.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace coremlz::engine {
namespace {

using ::testing::HasSubstr;

absl::Status ParseError(const std::string& text) { return ParseCompressionConfig(text).status(); }

TEST(ConfigParse, SinglePassWithOverrides) {
  auto config = ParseCompressionConfig(R"(
config_type: OpPalettizerConfig
global_config: {mode: kmeans, nbits: 4}
op_type_configs:
  linear: {nbits: 6}
  conv: null
op_name_configs:
  fc_weight: {config_type: OpLinearQuantizerConfig, dtype: uint8, mode: linear, granularity: per_tensor}
)");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->passes.size(), 1u);
  const OptimizationConfig& oc = config->passes[0].config;
  ASSERT_TRUE(oc.global.has_value());
  const auto& global = std::get<PalettizerConfig>(*oc.global);
  EXPECT_EQ(global.nbits, 4);
  EXPECT_EQ(global.granularity, Granularity::kPerTensor);  // coremltools' default
  EXPECT_EQ(global.weight_threshold, 2048);
  EXPECT_EQ(std::get<PalettizerConfig>(*oc.op_type_configs.at("linear")).nbits, 6);
  EXPECT_FALSE(oc.op_type_configs.at("conv").has_value());
  const auto& fc = std::get<LinearQuantizerConfig>(*oc.op_name_configs.at("fc_weight"));
  EXPECT_EQ(fc.bits, 8);
  EXPECT_FALSE(fc.is_signed);
  EXPECT_FALSE(fc.symmetric);
  EXPECT_EQ(fc.granularity, Granularity::kPerTensor);
}

TEST(ConfigParse, JsonIsAccepted) {
  auto config = ParseCompressionConfig(
      R"({"config_type": "OpMagnitudePrunerConfig", "global_config": {"n_m_ratio": [2, 4]}})");
  ASSERT_TRUE(config.ok()) << config.status();
  const auto& m = std::get<MagnitudePrunerConfig>(*config->passes[0].config.global);
  ASSERT_TRUE(m.n_m_ratio.has_value());
  EXPECT_EQ(m.n_m_ratio->first, 2);
  EXPECT_EQ(m.n_m_ratio->second, 4);
}

TEST(ConfigParse, JointPasses) {
  auto config = ParseCompressionConfig(R"(
passes:
  - config_type: OpMagnitudePrunerConfig
    global_config: {target_sparsity: 0.5}
  - config_type: OpPalettizerConfig
    joint_compression: true
    global_config: {nbits: 4}
)");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->passes.size(), 2u);
  EXPECT_FALSE(config->passes[0].joint_compression);
  EXPECT_TRUE(config->passes[1].joint_compression);
}

TEST(ConfigParse, ErrorsNameTheField) {
  EXPECT_THAT(ParseError("config_type: OpPalettizerConfig\nglobal_config: {nbits: 5}\n").message(),
              HasSubstr("Supported \"nbits\" are (1, 2, 3, 4, 6, 8)"));
  EXPECT_THAT(ParseError("config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, nbit: 2}\n").message(),
              HasSubstr("unknown key \"nbit\""));
  EXPECT_THAT(ParseError("global_config: {nbits: 4}\n").message(), HasSubstr("\"config_type\" is required"));
  EXPECT_THAT(ParseError("config_type: OpPalettizerConfig\nglobal_config: {nbits: four}\n").message(),
              HasSubstr("wrong type"));
  EXPECT_THAT(ParseError("[1, 2]").message(), HasSubstr("must be a mapping"));
  EXPECT_THAT(ParseError("{unclosed").message(), HasSubstr("not valid YAML"));
  EXPECT_THAT(ParseError("passes: []").message(), HasSubstr("non-empty list"));
  EXPECT_EQ(ParseError("config_type: OpPalettizerConfig\nglobal_config: {nbits: 5}\n").code(),
            absl::StatusCode::kInvalidArgument);
}

// YAML lets a key repeat; the later value would silently replace the former.
TEST(ConfigParse, RepeatedKeysAreRejected) {
  EXPECT_THAT(ParseError("config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, nbits: 2}\n").message(),
              HasSubstr("\"nbits\" is given twice"));
  EXPECT_THAT(ParseError(R"(
config_type: OpPalettizerConfig
op_name_configs:
  w: {nbits: 4}
  w: {nbits: 2}
)").message(),
              HasSubstr("\"w\" is given twice"));
}

TEST(ConfigParse, NamesMustBePrintableUtf8) {
  EXPECT_THAT(ParseError("config_type: OpPalettizerConfig\nop_name_configs:\n  \"w\\x01\": {nbits: 4}\n").message(),
              HasSubstr("control characters"));
  EXPECT_THAT(ParseError("config_type: OpPalettizerConfig\nop_type_configs:\n  \"\": {nbits: 4}\n").message(),
              HasSubstr("empty"));
  // A raw byte that is not UTF-8 (found by fuzz_config).
  EXPECT_THAT(ParseError("config_type: OpPalettizerConfig\nop_type_configs:\n  con\x8a: null\n").message(),
              HasSubstr("not UTF-8"));
  EXPECT_THAT(ParseError("config_type: OpPalettizerConfig\nop_type_configs:\n  ? [a, b]\n  : null\n").message(),
              HasSubstr("names must be strings"));
  // Non-ASCII names are fine.
  EXPECT_TRUE(ParseCompressionConfig("config_type: OpPalettizerConfig\nop_name_configs:\n  \"gewicht_ä\": {nbits: 4}\n").ok());
}

TEST(ConfigParse, YamlRoundTrip) {
  const char* configs[] = {
      "config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int4, granularity: per_block, block_size: [1, 32]}\n",
      "config_type: OpPalettizerConfig\nglobal_config: {mode: custom, lut: [-1.0, -0.25, 0.5, 1.0e-7]}\n",
      "config_type: OpPalettizerConfig\nglobal_config: {nbits: 3, granularity: per_grouped_channel, group_size: 16, "
      "enable_per_channel_scale: true, channel_axis: 1}\nop_name_configs: {\"a b\": null, \"ä\": {nbits: 8}}\n",
      "config_type: OpThresholdPrunerConfig\nglobal_config: {threshold: 0.03, minimum_sparsity_percentile: 0.1}\n",
      "config_type: OpMagnitudePrunerConfig\nglobal_config: {block_size: 2, target_sparsity: 0.3, dim: 1}\n",
  };
  for (const char* text : configs) {
    SCOPED_TRACE(text);
    auto config = ParseCompressionConfig(text);
    ASSERT_TRUE(config.ok()) << config.status();
    const std::string yaml = CompressionConfigToYaml(*config);
    auto again = ParseCompressionConfig(yaml);
    ASSERT_TRUE(again.ok()) << again.status() << "\n" << yaml;
    EXPECT_EQ(CompressionConfigToYaml(*again), yaml);
    ASSERT_EQ(again->passes.size(), config->passes.size());
    EXPECT_EQ(ConfigKey(*again->passes[0].config.global), ConfigKey(*config->passes[0].config.global));
  }
}

}  // namespace
}  // namespace coremlz::engine
