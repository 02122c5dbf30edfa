#include "engine/config_parse.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "engine/config_names.h"
#include "yaml-cpp/yaml.h"

namespace coremlz::engine {
namespace {

absl::Status Err(const std::string& where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("config ", where, ": ", what));
}

// yaml-cpp reports errors by exception; keep them inside this file.
template <typename T>
absl::StatusOr<T> Scalar(const YAML::Node& n, const std::string& where) {
  if (!n.IsScalar()) return Err(where, "expected a scalar value");
  try {
    return n.as<T>();
  } catch (const YAML::Exception& e) {
    return Err(where, absl::StrCat("cannot read \"", n.Scalar(), "\": wrong type"));
  }
}

absl::Status CheckKeys(const YAML::Node& n, const std::set<std::string>& allowed, const std::string& where) {
  std::set<std::string> seen;
  for (const auto& kv : n) {
    if (!kv.first.IsScalar()) return Err(where, "keys must be strings");
    const std::string key = kv.first.as<std::string>();
    if (!seen.insert(key).second) return Err(where, absl::StrCat("key \"", key, "\" is given twice"));
    if (!allowed.count(key)) {
      std::string list;
      for (const auto& a : allowed) absl::StrAppend(&list, list.empty() ? "" : ", ", a);
      return Err(where, absl::StrCat("unknown key \"", key, "\" (allowed: ", list, ")"));
    }
  }
  return absl::OkStatus();
}

// Reads `key`, when given, into *out.
template <typename T>
absl::Status ReadKey(const YAML::Node& n, const std::string& key, const std::string& where, T* out) {
  if (!n[key]) return absl::OkStatus();
  ASSIGN_OR_RETURN(*out, Scalar<T>(n[key], where + "." + key));
  return absl::OkStatus();
}

// An optional parameter: null means unset, as None does in coremltools.
template <typename T>
absl::Status ReadKey(const YAML::Node& n, const std::string& key, const std::string& where, std::optional<T>* out) {
  if (!n[key] || n[key].IsNull()) return absl::OkStatus();
  ASSIGN_OR_RETURN(*out, Scalar<T>(n[key], where + "." + key));
  return absl::OkStatus();
}

absl::Status ReadGranularity(const YAML::Node& n, const std::string& where, Granularity* out) {
  if (!n["granularity"]) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::string name, Scalar<std::string>(n["granularity"], where + ".granularity"));
  std::optional<Granularity> g = ParseGranularity(name);
  if (!g) {
    return Err(where + ".granularity", absl::StrCat("Invalid granularity=", absl::AsciiStrToLower(name),
                                                    " (expected per_tensor, per_channel, per_grouped_channel or per_block)"));
  }
  *out = *g;
  return absl::OkStatus();
}

// The parameters of each config class; `where` names the config in messages.
absl::Status ReadParameters(const YAML::Node& n, const std::string& where, LinearQuantizerConfig* c) {
  RETURN_IF_ERROR(CheckKeys(n, {"config_type", "mode", "dtype", "granularity", "block_size", "weight_threshold"}, where));
  if (n["mode"]) {
    ASSIGN_OR_RETURN(std::string m, Scalar<std::string>(n["mode"], where + ".mode"));
    std::optional<bool> symmetric = QuantModeIsSymmetric(m);
    if (!symmetric) {
      return Err(where + ".mode", absl::StrCat("Only mode ('LINEAR_SYMMETRIC', 'LINEAR') supported for weight affine "
                                               "quantization. Got mode: \"", absl::AsciiStrToUpper(m), "\"."));
    }
    c->symmetric = *symmetric;
  }
  if (n["dtype"]) {
    ASSIGN_OR_RETURN(std::string d, Scalar<std::string>(n["dtype"], where + ".dtype"));
    std::optional<QuantDtype> dtype = ParseQuantDtype(d);
    if (!dtype) {
      return Err(where + ".dtype", absl::StrCat("Invalid dtype ", absl::AsciiStrToLower(d), ". Only support int8/uint8/int4/uint4."));
    }
    c->bits = dtype->bits;
    c->is_signed = dtype->is_signed;
  }
  RETURN_IF_ERROR(ReadGranularity(n, where, &c->granularity));
  if (n["block_size"]) {
    // One size (the input-channel axis) or a list of one per weight axis.
    const YAML::Node& b = n["block_size"];
    c->block_size.clear();
    if (b.IsSequence()) {
      c->block_size_per_axis = true;
      for (size_t i = 0; i < b.size(); ++i) {
        ASSIGN_OR_RETURN(int64_t v, Scalar<int64_t>(b[i], where + ".block_size"));
        c->block_size.push_back(v);
      }
    } else {
      ASSIGN_OR_RETURN(int64_t v, Scalar<int64_t>(b, where + ".block_size"));
      c->block_size.push_back(v);
    }
  }
  return ReadKey(n, "weight_threshold", where, &c->weight_threshold);
}

absl::Status ReadParameters(const YAML::Node& n, const std::string& where, PalettizerConfig* c) {
  RETURN_IF_ERROR(CheckKeys(n, {"config_type", "mode", "nbits", "granularity", "group_size", "channel_axis", "cluster_dim",
                                "enable_per_channel_scale", "num_kmeans_workers", "weight_threshold", "lut"}, where));
  if (n["mode"]) {
    ASSIGN_OR_RETURN(std::string m, Scalar<std::string>(n["mode"], where + ".mode"));
    std::optional<PalettizerConfig::Mode> mode = ParsePaletteMode(m);
    if (!mode) {
      return Err(where + ".mode", absl::StrCat("Only modes (KMEANS, UNIFORM, UNIQUE, CUSTOM) are supported for weight "
                                               "palettization. Got \"mode\": \"", absl::AsciiStrToUpper(m), "\"."));
    }
    c->mode = *mode;
  }
  RETURN_IF_ERROR(ReadKey(n, "nbits", where, &c->nbits));
  RETURN_IF_ERROR(ReadGranularity(n, where, &c->granularity));
  RETURN_IF_ERROR(ReadKey(n, "group_size", where, &c->group_size));
  RETURN_IF_ERROR(ReadKey(n, "channel_axis", where, &c->channel_axis));
  RETURN_IF_ERROR(ReadKey(n, "cluster_dim", where, &c->cluster_dim));
  RETURN_IF_ERROR(ReadKey(n, "enable_per_channel_scale", where, &c->enable_per_channel_scale));
  RETURN_IF_ERROR(ReadKey(n, "num_kmeans_workers", where, &c->num_kmeans_workers));
  RETURN_IF_ERROR(ReadKey(n, "weight_threshold", where, &c->weight_threshold));
  if (n["lut"]) {
    // Scalars, or one list of cluster_dim values per entry.
    if (!n["lut"].IsSequence()) return Err(where + ".lut", "expected a list of numbers");
    for (size_t i = 0; i < n["lut"].size(); ++i) {
      const YAML::Node& e = n["lut"][i];
      if (e.IsSequence()) {
        for (size_t j = 0; j < e.size(); ++j) {
          ASSIGN_OR_RETURN(float v, Scalar<float>(e[j], where + ".lut"));
          c->lut.push_back(v);
        }
      } else {
        ASSIGN_OR_RETURN(float v, Scalar<float>(e, where + ".lut"));
        c->lut.push_back(v);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ReadParameters(const YAML::Node& n, const std::string& where, ThresholdPrunerConfig* c) {
  RETURN_IF_ERROR(CheckKeys(n, {"config_type", "threshold", "minimum_sparsity_percentile", "weight_threshold"}, where));
  RETURN_IF_ERROR(ReadKey(n, "threshold", where, &c->threshold));
  RETURN_IF_ERROR(ReadKey(n, "minimum_sparsity_percentile", where, &c->minimum_sparsity_percentile));
  return ReadKey(n, "weight_threshold", where, &c->weight_threshold);
}

absl::Status ReadParameters(const YAML::Node& n, const std::string& where, MagnitudePrunerConfig* c) {
  RETURN_IF_ERROR(CheckKeys(n, {"config_type", "target_sparsity", "block_size", "n_m_ratio", "dim", "weight_threshold"}, where));
  RETURN_IF_ERROR(ReadKey(n, "target_sparsity", where, &c->target_sparsity));
  RETURN_IF_ERROR(ReadKey(n, "block_size", where, &c->block_size));
  RETURN_IF_ERROR(ReadKey(n, "dim", where, &c->dim));
  if (n["n_m_ratio"] && !n["n_m_ratio"].IsNull()) {
    const YAML::Node& r = n["n_m_ratio"];
    if (!r.IsSequence() || r.size() != 2) return Err(where + ".n_m_ratio", "\"n_m_ratio\" must be a list of two integers [n, m]");
    ASSIGN_OR_RETURN(int a, Scalar<int>(r[0], where + ".n_m_ratio"));
    ASSIGN_OR_RETURN(int b, Scalar<int>(r[1], where + ".n_m_ratio"));
    c->n_m_ratio = std::make_pair(a, b);
  }
  return ReadKey(n, "weight_threshold", where, &c->weight_threshold);
}

absl::Status ReadParameters(const YAML::Node& n, const std::string& where, Fp16Config* c) {
  RETURN_IF_ERROR(CheckKeys(n, {"config_type", "weight_threshold"}, where));
  return ReadKey(n, "weight_threshold", where, &c->weight_threshold);
}

absl::StatusOr<OpConfig> ParseOpConfig(const YAML::Node& n, const std::string& type, const std::string& where) {
  if (!n.IsMap()) return Err(where, "expected a mapping of parameters");
  std::optional<OpConfig> config = DefaultConfigOfType(type);
  if (!config) {
    return Err(where, absl::StrCat("unknown config_type \"", type,
                                   "\" (expected OpLinearQuantizerConfig, OpPalettizerConfig, OpThresholdPrunerConfig, "
                                   "OpMagnitudePrunerConfig or Fp16Config)"));
  }
  RETURN_IF_ERROR(std::visit([&](auto& c) { return ReadParameters(n, where, &c); }, *config));
  return *std::move(config);
}

// A nested config may override the pass's config_type; null disables.
absl::StatusOr<std::optional<OpConfig>> ParseMaybeConfig(const YAML::Node& n, const std::string& default_type,
                                                         const std::string& where) {
  if (!n || n.IsNull()) return std::optional<OpConfig>();
  std::string type = default_type;
  if (n.IsMap() && n["config_type"]) { ASSIGN_OR_RETURN(type, Scalar<std::string>(n["config_type"], where + ".config_type")); }
  if (type.empty()) return Err(where, "config_type is required");
  ASSIGN_OR_RETURN(OpConfig c, ParseOpConfig(n, type, where));
  return std::optional<OpConfig>(std::move(c));
}

absl::StatusOr<CompressionPass> ParsePass(const YAML::Node& n, const std::string& where) {
  if (!n.IsMap()) return Err(where, "expected a mapping");
  RETURN_IF_ERROR(CheckKeys(n, {"config_type", "global_config", "op_type_configs", "op_name_configs", "joint_compression"}, where));
  if (!n["config_type"]) return Err(where, "\"config_type\" is required (e.g. OpPalettizerConfig)");
  ASSIGN_OR_RETURN(std::string type, Scalar<std::string>(n["config_type"], where + ".config_type"));
  CompressionPass pass;
  if (n["joint_compression"]) { ASSIGN_OR_RETURN(pass.joint_compression, Scalar<bool>(n["joint_compression"], where + ".joint_compression")); }
  ASSIGN_OR_RETURN(pass.config.global, ParseMaybeConfig(n["global_config"], type, where + ".global_config"));
  for (const char* key : {"op_type_configs", "op_name_configs"}) {
    const YAML::Node& m = n[key];
    if (!m || m.IsNull()) continue;
    if (!m.IsMap()) return Err(where + "." + key, "expected a mapping from names to configs");
    auto& target = std::string(key) == "op_type_configs" ? pass.config.op_type_configs : pass.config.op_name_configs;
    for (const auto& kv : m) {
      if (!kv.first.IsScalar()) return Err(where + "." + key, "names must be strings");
      const std::string name = kv.first.as<std::string>();
      // YAML allows a repeated key; the second would silently replace the first.
      if (target.count(name)) return Err(where + "." + key, absl::StrCat("\"", name, "\" is given twice"));
      ASSIGN_OR_RETURN(target[name], ParseMaybeConfig(kv.second, type, absl::StrCat(where, ".", key, "[", name, "]")));
    }
  }
  return pass;
}

}  // namespace

absl::StatusOr<CompressionConfig> ParseCompressionConfig(absl::string_view text) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config is not valid YAML/JSON: ", e.what()));
  }
  CompressionConfig config;
  try {
    if (!root.IsMap()) return absl::InvalidArgumentError("config must be a mapping (YAML or JSON object)");
    if (root["passes"]) {
      RETURN_IF_ERROR(CheckKeys(root, {"passes"}, "top level"));
      const YAML::Node& passes = root["passes"];
      if (!passes.IsSequence() || passes.size() == 0) return Err("passes", "expected a non-empty list");
      for (size_t i = 0; i < passes.size(); ++i) {
        ASSIGN_OR_RETURN(CompressionPass p, ParsePass(passes[i], absl::StrCat("passes[", i, "]")));
        config.passes.push_back(std::move(p));
      }
    } else {
      ASSIGN_OR_RETURN(CompressionPass p, ParsePass(root, "top level"));
      config.passes.push_back(std::move(p));
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config: ", e.what()));
  }
  RETURN_IF_ERROR(Validate(config));
  return config;
}

namespace {

void EmitOpConfig(YAML::Emitter& out, const OpConfig& c) {
  out << YAML::BeginMap << YAML::Key << "config_type" << YAML::Value << ConfigTypeName(c);
  if (auto* q = std::get_if<LinearQuantizerConfig>(&c)) {
    out << YAML::Key << "mode" << YAML::Value << QuantModeName(q->symmetric);
    out << YAML::Key << "dtype" << YAML::Value << QuantDtypeName(q->bits, q->is_signed);
    out << YAML::Key << "granularity" << YAML::Value << GranularityName(q->granularity);
    out << YAML::Key << "block_size" << YAML::Value;
    if (q->block_size_per_axis) {
      out << YAML::Flow << q->block_size;
    } else {
      out << q->block_size[0];
    }
  } else if (auto* p = std::get_if<PalettizerConfig>(&c)) {
    out << YAML::Key << "mode" << YAML::Value << PaletteModeName(p->mode);
    if (p->nbits) out << YAML::Key << "nbits" << YAML::Value << *p->nbits;
    out << YAML::Key << "granularity" << YAML::Value << GranularityName(p->granularity);
    out << YAML::Key << "group_size" << YAML::Value << p->group_size;
    if (p->channel_axis) out << YAML::Key << "channel_axis" << YAML::Value << *p->channel_axis;
    out << YAML::Key << "cluster_dim" << YAML::Value << p->cluster_dim;
    out << YAML::Key << "enable_per_channel_scale" << YAML::Value << p->enable_per_channel_scale;
    out << YAML::Key << "num_kmeans_workers" << YAML::Value << p->num_kmeans_workers;
    if (!p->lut.empty()) out << YAML::Key << "lut" << YAML::Value << YAML::Flow << p->lut;
  } else if (auto* t = std::get_if<ThresholdPrunerConfig>(&c)) {
    out << YAML::Key << "threshold" << YAML::Value << t->threshold;
    out << YAML::Key << "minimum_sparsity_percentile" << YAML::Value << t->minimum_sparsity_percentile;
  } else if (auto* m = std::get_if<MagnitudePrunerConfig>(&c)) {
    if (m->target_sparsity) out << YAML::Key << "target_sparsity" << YAML::Value << *m->target_sparsity;
    if (m->block_size) out << YAML::Key << "block_size" << YAML::Value << *m->block_size;
    if (m->n_m_ratio) {
      out << YAML::Key << "n_m_ratio" << YAML::Value << YAML::Flow << YAML::BeginSeq << m->n_m_ratio->first
          << m->n_m_ratio->second << YAML::EndSeq;
    }
    if (m->dim) out << YAML::Key << "dim" << YAML::Value << *m->dim;
  }
  out << YAML::Key << "weight_threshold" << YAML::Value << WeightThreshold(c);
  out << YAML::EndMap;
}

void EmitMaybe(YAML::Emitter& out, const std::optional<OpConfig>& c) {
  if (c) {
    EmitOpConfig(out, *c);
  } else {
    out << YAML::Null;
  }
}

}  // namespace

std::string CompressionConfigToYaml(const CompressionConfig& config) {
  YAML::Emitter out;
  out.SetDoublePrecision(17);
  out << YAML::BeginMap << YAML::Key << "passes" << YAML::Value << YAML::BeginSeq;
  for (const CompressionPass& pass : config.passes) {
    out << YAML::BeginMap;
    // config_type names the default class; each nested config states its own.
    std::string type = "OpPalettizerConfig";
    if (pass.config.global) type = ConfigTypeName(*pass.config.global);
    out << YAML::Key << "config_type" << YAML::Value << type;
    if (pass.joint_compression) out << YAML::Key << "joint_compression" << YAML::Value << true;
    out << YAML::Key << "global_config" << YAML::Value;
    EmitMaybe(out, pass.config.global);
    for (const auto* group : {&pass.config.op_type_configs, &pass.config.op_name_configs}) {
      if (group->empty()) continue;
      out << YAML::Key << (group == &pass.config.op_type_configs ? "op_type_configs" : "op_name_configs") << YAML::Value
          << YAML::BeginMap;
      for (const auto& [name, c] : *group) {
        out << YAML::Key << name << YAML::Value;
        EmitMaybe(out, c);
      }
      out << YAML::EndMap;
    }
    out << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace coremlz::engine
