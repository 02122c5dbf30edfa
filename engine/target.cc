#include "engine/target.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace coremlz::engine {

absl::StatusOr<Target> TargetFromSpecVersion(int spec) {
  switch (spec) {
    case 6: return Target::kIOS15;
    case 7: return Target::kIOS16;
    case 8: return Target::kIOS17;
    case 9: return Target::kIOS18;
    case 10: return Target::kIOS26;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "specification version ", spec, " has no ML Program compression ops (supported: 6..10, iOS15..iOS26)"));
  }
}

absl::StatusOr<Target> ParseTarget(absl::string_view text) {
  std::string t = absl::AsciiStrToLower(text);
  struct Alias {
    const char* ios;
    const char* macos;
    Target target;
  } aliases[] = {{"ios15", "macos12", Target::kIOS15}, {"ios16", "macos13", Target::kIOS16},
                 {"ios17", "macos14", Target::kIOS17}, {"ios18", "macos15", Target::kIOS18},
                 {"ios26", "macos26", Target::kIOS26}};
  for (const Alias& a : aliases) {
    if (t == a.ios || t == a.macos) return a.target;
  }
  absl::string_view digits = t;
  if (absl::StartsWith(digits, "spec")) digits.remove_prefix(4);
  int spec = 0;
  if (absl::SimpleAtoi(digits, &spec)) return TargetFromSpecVersion(spec);
  return absl::InvalidArgumentError(absl::StrCat("unknown deployment target \"", text,
                                                 "\" (expected one of ios15, ios16, ios17, ios18, ios26)"));
}

std::string TargetName(Target t) {
  switch (t) {
    case Target::kIOS15: return "iOS15";
    case Target::kIOS16: return "iOS16";
    case Target::kIOS17: return "iOS17";
    case Target::kIOS18: return "iOS18";
    case Target::kIOS26: return "iOS26";
  }
  return "?";
}

std::string OpsetName(Target t) { return absl::StrCat("CoreML", SpecVersion(t) - 1); }

}  // namespace coremlz::engine
