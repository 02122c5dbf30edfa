// The spellings of the config's enumerated values - granularity, palettization
// mode, linear quantization mode and dtype, config class - with one printer
// and one parser per name, so that config files, the API, the CLI flags and
// the reports agree on them.
//
// Parsers ignore ASCII case (coremltools upper-cases modes and lower-cases
// dtypes, and users write either) and return nullopt for an unknown name:
// each caller words the error for its own input (a config key, a proto
// field, a flag). Deployment targets have theirs in engine/target.h.
#ifndef COREMLZ_ENGINE_CONFIG_NAMES_H_
#define COREMLZ_ENGINE_CONFIG_NAMES_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "engine/config.h"

namespace coremlz::engine {

// "per_tensor", "per_channel", "per_grouped_channel", "per_block".
inline constexpr Granularity kGranularities[] = {Granularity::kPerTensor, Granularity::kPerChannel,
                                                 Granularity::kPerGroupedChannel, Granularity::kPerBlock};
std::string GranularityName(Granularity granularity);
std::optional<Granularity> ParseGranularity(absl::string_view name);

// "kmeans", "uniform", "unique", "custom".
std::string PaletteModeName(PalettizerConfig::Mode mode);
std::optional<PalettizerConfig::Mode> ParsePaletteMode(absl::string_view name);

// Linear quantization mode: "linear_symmetric" or "linear", which is
// LinearQuantizerConfig::symmetric.
std::string QuantModeName(bool symmetric);
// Whether the named mode is the symmetric one.
std::optional<bool> QuantModeIsSymmetric(absl::string_view name);

// Linear quantization dtype: "int8", "uint8", "int4", "uint4", which is
// LinearQuantizerConfig::bits and ::is_signed.
struct QuantDtype {
  int bits = 8;
  bool is_signed = true;
};
// Prints any width ("int2"), so that messages about an invalid config can
// name what it holds.
std::string QuantDtypeName(int bits, bool is_signed);
std::optional<QuantDtype> ParseQuantDtype(absl::string_view name);

// coremltools' class names: "OpLinearQuantizerConfig", "OpPalettizerConfig",
// "OpThresholdPrunerConfig", "OpMagnitudePrunerConfig", and coremlz's own
// "Fp16Config". Class names are matched exactly, as Python matches them.
std::string ConfigTypeName(const OpConfig& config);
// The named kind with every parameter at its default.
std::optional<OpConfig> DefaultConfigOfType(absl::string_view config_type);

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_CONFIG_NAMES_H_
