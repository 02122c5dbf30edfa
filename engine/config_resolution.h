// Which configs of a compression config apply to one weight, with
// coremltools' precedence (the weight's own name, then per consumer its op
// name, its op type, the global config) and coremlz's passes: the first pass
// with a config compresses the weight, a later joint pass compresses that
// result further.
#ifndef COREMLZ_ENGINE_CONFIG_RESOLUTION_H_
#define COREMLZ_ENGINE_CONFIG_RESOLUTION_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/config.h"
#include "engine/config_usage.h"
#include "engine/weight_compressor.h"

namespace coremlz::engine {

struct WeightConfigs {
  std::optional<OpConfig> primary;  // nullopt: nothing applies (null or unset)
  std::optional<OpConfig> joint;
  // Where each came from, for messages: "op_name_configs[\"conv1_weight\"] (pass 2)".
  std::string primary_source;
  std::string joint_source;
};

// INVALID_ARGUMENT when the weight's consumers resolve to different configs.
// Records the keys that matched in `usage`.
absl::StatusOr<WeightConfigs> ResolveWeightConfigs(const CompressionConfig& config, const std::string& const_name,
                                                   const std::vector<ConsumerInfo>& consumers, ConfigUsage* usage);

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_CONFIG_RESOLUTION_H_
