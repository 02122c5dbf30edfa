// Reading compression configs from YAML or JSON (JSON is YAML), in the shape
// coremltools' OptimizationConfig.from_yaml / from_dict accept:
//
//   config_type: OpPalettizerConfig        # default class for this config
//   global_config: {mode: kmeans, nbits: 4}
//   op_type_configs: {linear: {nbits: 6}, conv: null}
//   op_name_configs:
//     fc_weight: {config_type: OpLinearQuantizerConfig, dtype: int8}
//
// or, for several passes (joint compression), a list:
//
//   passes:
//     - config_type: OpMagnitudePrunerConfig
//       global_config: {target_sparsity: 0.5}
//     - config_type: OpPalettizerConfig
//       joint_compression: true
//       global_config: {nbits: 4}
//
// Unknown keys are errors, as in coremltools (cattrs forbid_extra_keys).
#ifndef COREMLZ_ENGINE_CONFIG_PARSE_H_
#define COREMLZ_ENGINE_CONFIG_PARSE_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/config.h"

namespace coremlz::engine {

absl::StatusOr<CompressionConfig> ParseCompressionConfig(absl::string_view yaml_or_json);

// The same config as YAML in the "passes" form; ParseCompressionConfig reads
// it back to an equal config.
std::string CompressionConfigToYaml(const CompressionConfig& config);

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_CONFIG_PARSE_H_
