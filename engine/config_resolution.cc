#include "engine/config_resolution.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace coremlz::engine {
namespace {

// coremltools' precedence: the const's own name, then per consumer its name,
// its op type, the global config; all consumers must agree.
// `source` says where the config came from, for messages.
absl::StatusOr<std::optional<OpConfig>> Resolve(const OptimizationConfig& oc, const std::string& const_name,
                                                const std::vector<ConsumerInfo>& consumers, size_t pass, size_t passes,
                                                ConfigUsage* usage, std::string* source) {
  const std::string pass_note = passes > 1 ? absl::StrCat(" (pass ", pass + 1, ")") : "";
  auto by_name = oc.op_name_configs.find(const_name);
  if (by_name != oc.op_name_configs.end()) {
    usage->MatchedName(pass, const_name);
    *source = absl::StrCat("op_name_configs[\"", const_name, "\"]", pass_note);
    return by_name->second;
  }
  if (consumers.empty()) return std::optional<OpConfig>();
  std::optional<OpConfig> chosen;
  std::string chosen_key;
  for (size_t i = 0; i < consumers.size(); ++i) {
    const ConsumerInfo& c = consumers[i];
    std::optional<OpConfig> cfg = oc.global;
    std::string from = absl::StrCat("global_config", pass_note);
    if (auto it = oc.op_name_configs.find(c.op_name); it != oc.op_name_configs.end()) {
      cfg = it->second;
      usage->MatchedName(pass, c.op_name);
      from = absl::StrCat("op_name_configs[\"", c.op_name, "\"]", pass_note);
    } else if (auto jt = oc.op_type_configs.find(c.op_type); jt != oc.op_type_configs.end()) {
      cfg = jt->second;
      usage->MatchedType(pass, c.op_type);
      from = absl::StrCat("op_type_configs[\"", c.op_type, "\"]", pass_note);
    }
    const std::string key = cfg ? ConfigKey(*cfg) : "none";
    if (i == 0) {
      chosen = cfg;
      chosen_key = key;
      *source = from;
    } else if (key != chosen_key) {
      return absl::InvalidArgumentError(absl::StrCat(
          "compression config conflict detected for weight \"", const_name, "\": its consumers ", consumers[0].op_type,
          " \"", consumers[0].op_name, "\" and ", c.op_type, " \"", c.op_name,
          "\" resolve to different configs; set one for the weight itself in op_name_configs"));
    }
  }
  return chosen;
}

}  // namespace

absl::StatusOr<WeightConfigs> ResolveWeightConfigs(const CompressionConfig& config, const std::string& const_name,
                                                   const std::vector<ConsumerInfo>& consumers, ConfigUsage* usage) {
  WeightConfigs chosen;
  size_t primary_pass = 0;
  for (size_t p = 0; p < config.passes.size(); ++p) {
    std::string source;
    ASSIGN_OR_RETURN(std::optional<OpConfig> cfg,
                     Resolve(config.passes[p].config, const_name, consumers, p, config.passes.size(), usage, &source));
    if (!cfg) continue;
    if (!chosen.primary) {
      chosen.primary = cfg;
      primary_pass = p;
      chosen.primary_source = source;
      continue;
    }
    if (config.passes[p].joint_compression && p > primary_pass && !chosen.joint) {
      chosen.joint = cfg;
      chosen.joint_source = source;
    }
  }
  return chosen;
}

}  // namespace coremlz::engine
