// The relative cost the service's early start divides its int8 rate by:
// each technique's factor, passes adding up, a mixed pass counting its
// cheapest config, and an empty config costing as int8.
#include "engine/compress_cost.h"

#include <string>

#include "engine/config_parse.h"
#include "gtest/gtest.h"

namespace coremlz::engine {
namespace {

double CostOf(const std::string& yaml) {
  auto config = ParseCompressionConfig(yaml);
  EXPECT_TRUE(config.ok()) << config.status() << "\n" << yaml;
  return config.ok() ? RelativeCost(*config) : -1;
}

TEST(CompressCostTest, EachTechniqueHasItsMeasuredFactor) {
  EXPECT_DOUBLE_EQ(CostOf("config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int8}\n"), 1.0);
  EXPECT_DOUBLE_EQ(CostOf("config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int4, granularity: "
                          "per_block, block_size: 32}\n"),
                   1.25);
  EXPECT_DOUBLE_EQ(CostOf("config_type: OpPalettizerConfig\nglobal_config: {nbits: 4}\n"), 1.8);
  EXPECT_DOUBLE_EQ(CostOf("config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, granularity: "
                          "per_grouped_channel, group_size: 16}\n"),
                   13.0);
  EXPECT_DOUBLE_EQ(CostOf("config_type: OpPalettizerConfig\nglobal_config: {nbits: 2, cluster_dim: 2}\n"), 4.0);
  EXPECT_DOUBLE_EQ(CostOf("config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, cluster_dim: 2}\n"), 6.5);
  EXPECT_DOUBLE_EQ(CostOf("config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, cluster_dim: 4}\n"), 6.5);
  EXPECT_DOUBLE_EQ(CostOf("config_type: OpPalettizerConfig\nglobal_config: {nbits: 4, mode: uniform}\n"), 1.0);
  EXPECT_DOUBLE_EQ(CostOf("config_type: OpMagnitudePrunerConfig\nglobal_config: {target_sparsity: 0.5}\n"), 1.5);
  EXPECT_DOUBLE_EQ(CostOf("config_type: OpThresholdPrunerConfig\nglobal_config: {threshold: 0.01}\n"), 1.0);
}

TEST(CompressCostTest, PassesAddUpAndAMixedPassCountsItsCheapestConfig) {
  // Joint compression: pruning, then 4-bit k-means over the pruned weights.
  EXPECT_DOUBLE_EQ(CostOf("passes:\n"
                          "  - config_type: OpMagnitudePrunerConfig\n"
                          "    global_config: {target_sparsity: 0.5}\n"
                          "  - config_type: OpPalettizerConfig\n"
                          "    global_config: {nbits: 4}\n"
                          "    joint_compression: true\n"),
                   3.3);
  // Which weights take which config is not known before the model is read:
  // the cheapest present keeps the estimate low.
  EXPECT_DOUBLE_EQ(CostOf("config_type: OpPalettizerConfig\n"
                          "global_config: {nbits: 4, granularity: per_grouped_channel, group_size: 16}\n"
                          "op_name_configs:\n"
                          "  w1: {nbits: 4}\n"
                          "  w2: null\n"),
                   1.8);
  // Nothing compressed: as int8 (the flag's own rate).
  EXPECT_DOUBLE_EQ(CostOf("config_type: OpPalettizerConfig\nop_name_configs:\n  w1: null\n"), 1.0);
}

TEST(CompressCostTest, OnlyPassesOfOneCostTeachTheLearnedRate) {
  auto one = [](const std::string& yaml) {
    auto config = ParseCompressionConfig(yaml);
    EXPECT_TRUE(config.ok()) << config.status() << "\n" << yaml;
    return config.ok() && HasOneCostPerPass(*config);
  };
  EXPECT_TRUE(one("config_type: OpLinearQuantizerConfig\nglobal_config: {dtype: int8}\n"));
  // Joint: two passes, each of one cost.
  EXPECT_TRUE(one("passes:\n"
                  "  - config_type: OpMagnitudePrunerConfig\n"
                  "    global_config: {target_sparsity: 0.5}\n"
                  "  - config_type: OpPalettizerConfig\n"
                  "    global_config: {nbits: 4}\n"
                  "    joint_compression: true\n"));
  // Per-weight configs of the same cost, and weights left out, are one cost.
  EXPECT_TRUE(one("config_type: OpPalettizerConfig\nglobal_config: {nbits: 4}\n"
                  "op_name_configs:\n  w1: {nbits: 6}\n  w2: null\n"));
  // Grouped k-means with an int8-priced exception (which may match no
  // weight): counted at its cheapest, so it must not teach that cost.
  EXPECT_FALSE(one("config_type: OpPalettizerConfig\n"
                   "global_config: {nbits: 4, granularity: per_grouped_channel, group_size: 16}\n"
                   "op_name_configs:\n  w1: {nbits: 4}\n"));
}

}  // namespace
}  // namespace coremlz::engine
