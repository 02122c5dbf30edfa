// Builds a compression config from the CLI's shortcut flags (--palettize 4,
// --quantize int8, --prune 0.5, --fp16, ...) or reads --config FILE.
#ifndef COREMLZ_CLIENTS_CONFIG_FLAGS_H_
#define COREMLZ_CLIENTS_CONFIG_FLAGS_H_

#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "common/arg_parser.h"
#include "engine/config.h"

namespace coremlz::cli {

// The value and boolean flags ConfigFromFlags understands.
const std::set<std::string>& ConfigValueFlags();
const std::set<std::string>& ConfigBoolFlags();

// --config wins and may not be mixed with shortcut flags. Shortcuts build one
// pass per technique; pruning combined with palettization or quantization
// becomes prune followed by a joint pass.
absl::StatusOr<engine::CompressionConfig> ConfigFromFlags(const Args& args);

}  // namespace coremlz::cli

#endif  // COREMLZ_CLIENTS_CONFIG_FLAGS_H_
