#include "engine/config_usage.h"

#include "absl/strings/str_cat.h"

namespace coremlz::engine {
namespace {

bool SelectsAnything(const OptimizationConfig& oc) {
  if (oc.global) return true;
  for (const auto* configs : {&oc.op_type_configs, &oc.op_name_configs}) {
    for (const auto& entry : *configs) {
      if (entry.second) return true;
    }
  }
  return false;
}

}  // namespace

std::vector<std::string> ConfigUsage::Warnings(const CompressionConfig& config, const CompressionReport& report) const {
  std::vector<std::string> out;
  bool any_selects = false;
  for (size_t p = 0; p < config.passes.size(); ++p) {
    const OptimizationConfig& oc = config.passes[p].config;
    const std::string pass = config.passes.size() > 1 ? absl::StrCat(" (pass ", p + 1, ")") : "";
    if (SelectsAnything(oc)) {
      any_selects = true;
    } else if (config.passes.size() > 1) {
      out.push_back(absl::StrCat("pass ", p + 1, " selects no weights: it has no global config and every op config is null"));
    }
    for (const auto& entry : oc.op_name_configs) {
      if (!names_.count({p, entry.first})) {
        out.push_back(absl::StrCat("op_name_configs[\"", entry.first, "\"]", pass,
                                   " matched no weight or op of the model (coremlz inspect lists the weight names)"));
      }
    }
    for (const auto& entry : oc.op_type_configs) {
      if (!types_.count({p, entry.first})) {
        out.push_back(absl::StrCat("op_type_configs[\"", entry.first, "\"]", pass,
                                   " matched no op that reads a weight (op types are MIL ops such as conv, linear, "
                                   "matmul, or NeuralNetwork layer types such as convolution, innerProduct)"));
      }
    }
  }
  if (!any_selects) {
    out.push_back("the config selects no weights: it has no global config and no non-null op_type or op_name config, "
                  "so the model is written back unchanged");
  } else if (report.weights_compressed == 0 && !report.weights.empty()) {
    out.push_back(absl::StrCat("no weight was compressed: all ", report.weights.size(),
                               " weights were skipped (each row's skipped_reason says why)"));
  }
  return out;
}

}  // namespace coremlz::engine
