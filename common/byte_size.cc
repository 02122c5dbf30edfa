#include "common/byte_size.h"

#include <cstring>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace coremlz {

absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text) {
  std::string t = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(text));
  for (const char* suffix : {"IB", "B"}) {
    if (t.size() > std::strlen(suffix) && absl::EndsWith(t, suffix)) {
      t.resize(t.size() - std::strlen(suffix));
      break;
    }
  }
  double scale = 1;
  if (!t.empty()) {
    switch (t.back()) {
      case 'K': scale = 1024.0; break;
      case 'M': scale = 1024.0 * 1024; break;
      case 'G': scale = 1024.0 * 1024 * 1024; break;
      case 'T': scale = 1024.0 * 1024 * 1024 * 1024; break;
      default: break;
    }
    if (scale != 1) t.pop_back();
  }
  double value = 0;
  if (t.empty() || !absl::SimpleAtod(t, &value) || !(value > 0) || value * scale > 1e18) {
    return absl::InvalidArgumentError(absl::StrCat("expected a positive size such as 512M or 10G, got \"", text, "\""));
  }
  return static_cast<uint64_t>(value * scale);
}

}  // namespace coremlz
