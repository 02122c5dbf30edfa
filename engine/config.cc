#include "engine/config.h"

#include <cmath>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/utf8.h"
#include "engine/config_names.h"

namespace coremlz::engine {

namespace {

absl::Status Bad(absl::string_view config_type, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(config_type, ": ", message));
}

absl::Status CheckThreshold(absl::string_view type, int64_t t) {
  if (t < 0) return Bad(type, absl::StrCat("\"weight_threshold\" must be a non-negative integer. Got ", t, "."));
  return absl::OkStatus();
}

}  // namespace

std::string TechniqueName(const OpConfig& c) {
  switch (c.index()) {
    case 0: return "linear_quantize";
    case 1: return "palettize";
    case 2:
    case 3: return "prune";
    default: return "fp16";
  }
}

int64_t WeightThreshold(const OpConfig& c) {
  return std::visit([](const auto& cfg) { return cfg.weight_threshold; }, c);
}

std::string DescribeParams(const OpConfig& c) {
  if (auto* q = std::get_if<LinearQuantizerConfig>(&c)) {
    std::string s = absl::StrCat("mode=", QuantModeName(q->symmetric), " dtype=", QuantDtypeName(q->bits, q->is_signed),
                                 " granularity=", GranularityName(q->granularity));
    if (q->granularity == Granularity::kPerBlock) absl::StrAppend(&s, " block_size=", absl::StrJoin(q->block_size, ","));
    return s;
  }
  if (auto* p = std::get_if<PalettizerConfig>(&c)) {
    std::string s = absl::StrCat("mode=", PaletteModeName(p->mode));
    if (p->nbits) absl::StrAppend(&s, " nbits=", *p->nbits);
    absl::StrAppend(&s, " granularity=", GranularityName(p->granularity));
    if (p->granularity == Granularity::kPerGroupedChannel) absl::StrAppend(&s, " group_size=", p->group_size);
    if (p->cluster_dim > 1) absl::StrAppend(&s, " cluster_dim=", p->cluster_dim);
    if (p->enable_per_channel_scale) absl::StrAppend(&s, " per_channel_scale");
    return s;
  }
  if (auto* t = std::get_if<ThresholdPrunerConfig>(&c)) {
    return absl::StrCat("threshold=", t->threshold, " minimum_sparsity_percentile=", t->minimum_sparsity_percentile);
  }
  if (auto* m = std::get_if<MagnitudePrunerConfig>(&c)) {
    std::string s;
    if (m->target_sparsity) absl::StrAppend(&s, "target_sparsity=", *m->target_sparsity);
    if (m->block_size) absl::StrAppend(&s, " block_size=", *m->block_size);
    if (m->n_m_ratio) absl::StrAppend(&s, "n_m_ratio=", m->n_m_ratio->first, ":", m->n_m_ratio->second);
    if (m->dim) absl::StrAppend(&s, " dim=", *m->dim);
    return s;
  }
  return "dtype=fp16";
}

std::string ConfigKey(const OpConfig& c) {
  std::string key = absl::StrCat(ConfigTypeName(c), "|", DescribeParams(c), "|", WeightThreshold(c));
  if (auto* q = std::get_if<LinearQuantizerConfig>(&c)) {
    absl::StrAppend(&key, "|", absl::StrJoin(q->block_size, ","), q->block_size_per_axis ? "/axis" : "");
  } else if (auto* p = std::get_if<PalettizerConfig>(&c)) {
    absl::StrAppend(&key, "|", p->group_size, "|", p->channel_axis ? *p->channel_axis : -99, "|",
                    absl::StrJoin(p->lut, ","));
  }
  return key;
}

absl::Status Validate(const OpConfig& c) {
  const std::string type = ConfigTypeName(c);
  if (auto* q = std::get_if<LinearQuantizerConfig>(&c)) {
    if (q->bits != 4 && q->bits != 8) return Bad(type, absl::StrCat("Invalid dtype. Should be int4/8 or uint4/8, but got ", q->bits, " bits"));
    if (q->granularity == Granularity::kPerGroupedChannel) {
      return Bad(type, "\"granularity\" must be one of per_tensor, per_channel, per_block; got per_grouped_channel");
    }
    for (int64_t b : q->block_size) {
      if (b < 0) return Bad(type, absl::StrCat("The block_size must be non-negative values, but got ", b));
    }
    if (q->block_size.empty()) return Bad(type, "block_size must not be empty");
    return CheckThreshold(type, q->weight_threshold);
  }
  if (auto* p = std::get_if<PalettizerConfig>(&c)) {
    using M = PalettizerConfig::Mode;
    const bool needs_bits = p->mode == M::kKMeans || p->mode == M::kUniform;
    if (needs_bits && !p->nbits) return Bad(type, absl::StrCat("\"nbits\" must be provided for ", PaletteModeName(p->mode), " mode"));
    if (!needs_bits && p->nbits) return Bad(type, absl::StrCat("\"nbits\" must NOT be provided for ", PaletteModeName(p->mode), " mode"));
    if (p->nbits) {
      const int b = *p->nbits;
      if (b != 1 && b != 2 && b != 3 && b != 4 && b != 6 && b != 8) {
        return Bad(type, absl::StrCat("Invalid value of \"nbits\" (", b, ") for palettization. Supported \"nbits\" are (1, 2, 3, 4, 6, 8)"));
      }
    }
    if (p->granularity != Granularity::kPerTensor && p->granularity != Granularity::kPerGroupedChannel) {
      return Bad(type, absl::StrCat("\"granularity\" must be per_tensor or per_grouped_channel, but got ", GranularityName(p->granularity)));
    }
    if (p->group_size < 0) return Bad(type, absl::StrCat("group_size must be >= 0, got ", p->group_size));
    if (p->cluster_dim < 1) return Bad(type, absl::StrCat("cluster_dim must be >= 1, got ", p->cluster_dim));
    if (p->mode == M::kUniform && p->cluster_dim > 1) {
      return Bad(type, "Vector palettization (cluster_dim > 1) doesn't support UNIFORM mode.");
    }
    if (p->mode == M::kCustom) {
      const size_t entries = p->lut.size() / p->cluster_dim;
      bool ok = p->lut.size() % p->cluster_dim == 0;
      bool pow2 = false;
      for (int b : {1, 2, 3, 4, 6, 8}) pow2 |= entries == (size_t{1} << b);
      if (!ok || !pow2) {
        return Bad(type, absl::StrCat("\"lut\" must hold 2^n entries (n in 1,2,3,4,6,8) of cluster_dim values; got ",
                                      p->lut.size(), " values"));
      }
      // A non-finite entry would be written into the model as a palette
      // value that every weight mapped to it decodes to.
      for (size_t i = 0; i < p->lut.size(); ++i) {
        if (!std::isfinite(p->lut[i])) {
          return Bad(type, absl::StrCat("\"lut\"[", i, "] is ", p->lut[i], "; palette entries must be finite numbers"));
        }
      }
    } else if (!p->lut.empty()) {
      return Bad(type, "\"lut\" is only used with mode \"custom\"");
    }
    if (p->num_kmeans_workers < 1) return Bad(type, "num_kmeans_workers must be >= 1");
    return CheckThreshold(type, p->weight_threshold);
  }
  if (auto* t = std::get_if<ThresholdPrunerConfig>(&c)) {
    if (!(t->threshold >= 0)) return Bad(type, absl::StrCat("Invalid value of \"threshold\": ", t->threshold, ". Needs to be in [0, inf)"));
    if (!(t->minimum_sparsity_percentile >= 0 && t->minimum_sparsity_percentile <= 1)) {
      return Bad(type, absl::StrCat("Invalid value of \"minimum_sparsity_percentile\": ", t->minimum_sparsity_percentile, ". Needs to be in [0, 1]"));
    }
    return CheckThreshold(type, t->weight_threshold);
  }
  if (auto* m = std::get_if<MagnitudePrunerConfig>(&c)) {
    if (m->target_sparsity.has_value() == m->n_m_ratio.has_value()) {
      return Bad(type, "Either \"target_sparsity\" or \"n_m_ratio\" need to be set. They cannot be set at the same time.");
    }
    if (m->target_sparsity && !(*m->target_sparsity >= 0 && *m->target_sparsity <= 1)) {
      return Bad(type, absl::StrCat("Invalid value of \"target_sparsity\": ", *m->target_sparsity, ". Needs to be in [0, 1]."));
    }
    if (m->block_size) {
      if (m->n_m_ratio) return Bad(type, "\"block_size\" and \"n_m_ratio\" cannot be set at the same time.");
      if (*m->block_size <= 1) return Bad(type, absl::StrCat("\"block_size\" must be an integer > 1. Got ", *m->block_size, "."));
    }
    if (m->n_m_ratio) {
      auto [n, mm] = *m->n_m_ratio;
      if (n < 0 || mm < 1 || n > mm) {
        return Bad(type, absl::StrCat("\"n_m_ratio\" must be a tuple of two integers (n, m). n <= m. Got (", n, ", ", mm, ")"));
      }
    }
    if (m->dim) {
      if (!m->block_size && !m->n_m_ratio) return Bad(type, "\"dim\" can only be set along with \"block_size\" or \"n_m_ratio\".");
      if (*m->dim != 0 && *m->dim != 1) return Bad(type, absl::StrCat("\"dim\" must be 1 or 0. Got ", *m->dim, "."));
    }
    return CheckThreshold(type, m->weight_threshold);
  }
  return CheckThreshold(type, WeightThreshold(c));
}

absl::Status Validate(const CompressionConfig& config) {
  if (config.passes.empty()) return absl::InvalidArgumentError("the compression config has no passes");
  for (size_t i = 0; i < config.passes.size(); ++i) {
    const OptimizationConfig& oc = config.passes[i].config;
    auto check = [&](const std::optional<OpConfig>& c, absl::string_view where) -> absl::Status {
      if (!c) return absl::OkStatus();
      absl::Status s = Validate(*c);
      if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("pass ", i + 1, " ", where, ": ", s.message()));
      return absl::OkStatus();
    };
    if (auto s = check(oc.global, "global_config"); !s.ok()) return s;
    for (const auto& [k, v] : oc.op_type_configs) {
      if (k == "const") {
        return absl::InvalidArgumentError(absl::StrCat("pass ", i + 1, ": const ops cannot be set by op_type_configs; use op_name_configs"));
      }
      if (v) {
        if (auto* m = std::get_if<MagnitudePrunerConfig>(&*v); m && (m->block_size || m->n_m_ratio) && k != "conv" && k != "linear") {
          return absl::InvalidArgumentError(absl::StrCat("pass ", i + 1, ": block sparsity or n:m pruning does not support op type ", k));
        }
      }
      if (auto s = check(v, absl::StrCat("op_type_configs[", k, "]")); !s.ok()) return s;
    }
    for (const auto& [k, v] : oc.op_name_configs) {
      if (auto s = check(v, absl::StrCat("op_name_configs[", k, "]")); !s.ok()) return s;
    }
    // A name that is not printable UTF-8 can never match an op (MIL names are
    // protobuf strings) and would not survive being echoed back.
    for (const auto* names : {&oc.op_type_configs, &oc.op_name_configs}) {
      for (const auto& entry : *names) {
        if (entry.first.empty() || !IsPrintableUtf8(entry.first)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "pass ", i + 1, ": ", names == &oc.op_type_configs ? "op_type_configs" : "op_name_configs",
              " has a key that is empty, not UTF-8 or has control characters: \"", absl::CHexEscape(entry.first), "\""));
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace coremlz::engine
