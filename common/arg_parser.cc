#include "common/arg_parser.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace coremlz {

absl::StatusOr<Args> Args::Parse(const std::vector<std::string>& argv, const std::set<std::string>& value_flags,
                                 const std::set<std::string>& bool_flags) {
  Args args;
  bool only_positional = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (only_positional || a.size() < 2 || a[0] != '-' || a == "-") {
      args.positional_.push_back(a);
      continue;
    }
    if (a == "--") {
      only_positional = true;
      continue;
    }
    std::string name = a.substr(a[1] == '-' ? 2 : 1);
    std::optional<std::string> inline_value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (name == "o") name = "output";
    if (name == "h") name = "help";
    if (bool_flags.count(name)) {
      if (inline_value) return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      args.bools_.insert(name);
    } else if (value_flags.count(name)) {
      if (inline_value) {
        args.values_[name] = *inline_value;
      } else if (i + 1 < argv.size()) {
        args.values_[name] = argv[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown option ", a));
    }
  }
  return args;
}

std::optional<std::string> Args::Value(const std::string& flag) const {
  auto it = values_.find(flag);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<std::optional<int64_t>> Args::Int(const std::string& flag) const {
  auto v = Value(flag);
  if (!v) return std::optional<int64_t>();
  int64_t out;
  if (!absl::SimpleAtoi(*v, &out)) return absl::InvalidArgumentError(absl::StrCat("--", flag, " expects an integer, got \"", *v, "\""));
  return std::optional<int64_t>(out);
}

absl::StatusOr<std::optional<double>> Args::Double(const std::string& flag) const {
  auto v = Value(flag);
  if (!v) return std::optional<double>();
  double out;
  if (!absl::SimpleAtod(*v, &out)) return absl::InvalidArgumentError(absl::StrCat("--", flag, " expects a number, got \"", *v, "\""));
  return std::optional<double>(out);
}

}  // namespace coremlz
