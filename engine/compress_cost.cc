#include "engine/compress_cost.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <type_traits>
#include <variant>

namespace coremlz::engine {

double RelativeCost(const OpConfig& config) {
  return std::visit(
      [](const auto& c) -> double {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, LinearQuantizerConfig>) {
          return c.granularity == Granularity::kPerBlock ? 1.25 : 1.0;
        } else if constexpr (std::is_same_v<T, PalettizerConfig>) {
          if (c.mode != PalettizerConfig::Mode::kKMeans) return 1.0;  // a scan and a lookup, as int8
          // Vector palettes measured 4.1 (2-bit 2-D), 6.6 (4-bit 2-D), 9.4
          // (4-bit 4-D) and 8.4 (3-bit 8-D); the lowest of the last three
          // keeps the estimate low for all of them.
          if (c.cluster_dim > 1) return c.cluster_dim == 2 && c.nbits.value_or(8) <= 2 ? 4.0 : 6.5;
          if (c.granularity == Granularity::kPerGroupedChannel) return 13.0;
          return 1.8;
        } else if constexpr (std::is_same_v<T, MagnitudePrunerConfig>) {
          return 1.5;
        } else {
          return 1.0;  // threshold pruning, fp16: one pass over the values
        }
      },
      config);
}

namespace {

// The relative costs of the configs a pass holds (weights left out hold none).
template <typename Fn>
void ForEachCost(const CompressionPass& pass, Fn fn) {
  auto consider = [&](const std::optional<OpConfig>& c) {
    if (c) fn(RelativeCost(*c));
  };
  consider(pass.config.global);
  for (const auto& [name, c] : pass.config.op_type_configs) consider(c);
  for (const auto& [name, c] : pass.config.op_name_configs) consider(c);
}

}  // namespace

double RelativeCost(const CompressionConfig& config) {
  double total = 0;
  for (const CompressionPass& pass : config.passes) {
    double cheapest = std::numeric_limits<double>::infinity();
    ForEachCost(pass, [&](double cost) { cheapest = std::min(cheapest, cost); });
    if (cheapest != std::numeric_limits<double>::infinity()) total += cheapest;
  }
  return std::max(1.0, total);
}

bool HasOneCostPerPass(const CompressionConfig& config) {
  for (const CompressionPass& pass : config.passes) {
    std::optional<double> first;
    bool one = true;
    ForEachCost(pass, [&](double cost) {
      if (!first) first = cost;
      one = one && cost == *first;
    });
    if (!one) return false;
  }
  return true;
}

}  // namespace coremlz::engine
