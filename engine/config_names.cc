#include "engine/config_names.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace coremlz::engine {
namespace {

// The one of `values` whose printed name is `name`, ignoring case.
template <typename Enum, size_t N, typename NameFn>
std::optional<Enum> FindByName(const Enum (&values)[N], NameFn name_of, absl::string_view name) {
  for (Enum v : values) {
    if (absl::EqualsIgnoreCase(name, name_of(v))) return v;
  }
  return std::nullopt;
}

constexpr PalettizerConfig::Mode kPaletteModes[] = {PalettizerConfig::Mode::kKMeans, PalettizerConfig::Mode::kUniform,
                                                    PalettizerConfig::Mode::kUnique, PalettizerConfig::Mode::kCustom};

}  // namespace

std::string GranularityName(Granularity g) {
  switch (g) {
    case Granularity::kPerTensor: return "per_tensor";
    case Granularity::kPerChannel: return "per_channel";
    case Granularity::kPerGroupedChannel: return "per_grouped_channel";
    case Granularity::kPerBlock: return "per_block";
  }
  return "?";
}

std::optional<Granularity> ParseGranularity(absl::string_view name) {
  return FindByName(kGranularities, GranularityName, name);
}

std::string PaletteModeName(PalettizerConfig::Mode m) {
  switch (m) {
    case PalettizerConfig::Mode::kKMeans: return "kmeans";
    case PalettizerConfig::Mode::kUniform: return "uniform";
    case PalettizerConfig::Mode::kUnique: return "unique";
    case PalettizerConfig::Mode::kCustom: return "custom";
  }
  return "?";
}

std::optional<PalettizerConfig::Mode> ParsePaletteMode(absl::string_view name) {
  return FindByName(kPaletteModes, PaletteModeName, name);
}

std::string QuantModeName(bool symmetric) { return symmetric ? "linear_symmetric" : "linear"; }

std::optional<bool> QuantModeIsSymmetric(absl::string_view name) {
  constexpr bool kModes[] = {true, false};
  return FindByName(kModes, QuantModeName, name);
}

std::string QuantDtypeName(int bits, bool is_signed) { return absl::StrCat(is_signed ? "int" : "uint", bits); }

std::optional<QuantDtype> ParseQuantDtype(absl::string_view name) {
  for (int bits : {8, 4}) {
    for (bool is_signed : {true, false}) {
      if (absl::EqualsIgnoreCase(name, QuantDtypeName(bits, is_signed))) return QuantDtype{bits, is_signed};
    }
  }
  return std::nullopt;
}

std::string ConfigTypeName(const OpConfig& c) {
  switch (c.index()) {
    case 0: return "OpLinearQuantizerConfig";
    case 1: return "OpPalettizerConfig";
    case 2: return "OpThresholdPrunerConfig";
    case 3: return "OpMagnitudePrunerConfig";
    default: return "Fp16Config";
  }
}

std::optional<OpConfig> DefaultConfigOfType(absl::string_view config_type) {
  for (const OpConfig& c : {OpConfig(LinearQuantizerConfig()), OpConfig(PalettizerConfig()),
                            OpConfig(ThresholdPrunerConfig()), OpConfig(MagnitudePrunerConfig()),
                            OpConfig(Fp16Config())}) {
    if (config_type == ConfigTypeName(c)) return c;
  }
  return std::nullopt;
}

}  // namespace coremlz::engine
