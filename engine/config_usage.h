// Which op_name_configs / op_type_configs keys of a compression config
// matched something in the model. A key that matches nothing is almost always
// a typo or a config written for another model; coremltools says nothing and
// compresses less than the user meant, so coremlz reports it as a warning.
#ifndef COREMLZ_ENGINE_CONFIG_USAGE_H_
#define COREMLZ_ENGINE_CONFIG_USAGE_H_

#include <cstddef>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/config.h"
#include "engine/report.h"

namespace coremlz::engine {

class ConfigUsage {
 public:
  void MatchedName(size_t pass, const std::string& key) { names_.insert({pass, key}); }
  void MatchedType(size_t pass, const std::string& key) { types_.insert({pass, key}); }

  // Warnings for keys that matched nothing, for a config that can select no
  // weight at all, and for a run that compressed no weight.
  std::vector<std::string> Warnings(const CompressionConfig& config, const CompressionReport& report) const;

 private:
  std::set<std::pair<size_t, std::string>> names_;
  std::set<std::pair<size_t, std::string>> types_;
};

}  // namespace coremlz::engine

#endif  // COREMLZ_ENGINE_CONFIG_USAGE_H_
