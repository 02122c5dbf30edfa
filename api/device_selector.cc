#include "api/device_selector.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace coremlz::api {
namespace {

// "17.4.1" -> {17, 4, 1}; non-numeric parts count as 0.
std::vector<int> Version(absl::string_view v) {
  std::vector<int> out;
  for (absl::string_view part : absl::StrSplit(v, '.')) {
    int n = 0;
    (void)absl::SimpleAtoi(part, &n);
    out.push_back(n);
  }
  return out;
}

int CompareVersions(absl::string_view a, absl::string_view b) {
  std::vector<int> x = Version(a), y = Version(b);
  x.resize(std::max(x.size(), y.size()), 0);
  y.resize(x.size(), 0);
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  }
  return 0;
}

}  // namespace

bool MatchesSelector(const v1::DeviceInfo& device, const v1::DeviceSelector& selector) {
  if (!selector.model().empty() && selector.model() != "any" && device.model() != selector.model() &&
      !absl::StrContains(absl::AsciiStrToLower(device.name()), absl::AsciiStrToLower(selector.model()))) {
    return false;
  }
  if (!selector.platform().empty() && !absl::EqualsIgnoreCase(device.platform(), selector.platform())) return false;
  if (!selector.min_os().empty() && CompareVersions(device.os_version(), selector.min_os()) < 0) return false;
  if (!selector.max_os().empty() && CompareVersions(device.os_version(), selector.max_os()) > 0) return false;
  return true;
}

}  // namespace coremlz::api
