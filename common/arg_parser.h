// A small command-line parser for subcommands: "--name value", "--name=value",
// boolean "--flag", and positional arguments, with errors that name the
// offending argument.
#ifndef COREMLZ_COMMON_ARG_PARSER_H_
#define COREMLZ_COMMON_ARG_PARSER_H_

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace coremlz {

class Args {
 public:
  // `value_flags` take a value; `bool_flags` do not. Anything else starting
  // with "--" is an error.
  static absl::StatusOr<Args> Parse(const std::vector<std::string>& argv, const std::set<std::string>& value_flags,
                                    const std::set<std::string>& bool_flags);

  bool Has(const std::string& flag) const { return values_.count(flag) > 0 || bools_.count(flag) > 0; }
  bool Bool(const std::string& flag) const { return bools_.count(flag) > 0; }
  std::optional<std::string> Value(const std::string& flag) const;
  absl::StatusOr<std::optional<int64_t>> Int(const std::string& flag) const;
  absl::StatusOr<std::optional<double>> Double(const std::string& flag) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::set<std::string> bools_;
  std::vector<std::string> positional_;
};

}  // namespace coremlz

#endif  // COREMLZ_COMMON_ARG_PARSER_H_
