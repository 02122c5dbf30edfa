#include "execute/padding.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace coremlz::execute {

absl::StatusOr<std::vector<int64_t>> ResolvePadding(const std::string& pad_type,
                                                    absl::Span<const int64_t> custom_pad,
                                                    absl::Span<const int64_t> in,
                                                    absl::Span<const int64_t> kernel,
                                                    absl::Span<const int64_t> strides) {
  const size_t dims = in.size();
  std::vector<int64_t> pad(2 * dims, 0);
  if (pad_type == "valid") return pad;
  if (pad_type == "custom") {
    if (custom_pad.size() != 2 * dims) {
      return absl::InvalidArgumentError(absl::StrCat("pad has ", custom_pad.size(), " values, expected ", 2 * dims));
    }
    for (size_t i = 0; i < 2 * dims; ++i) {
      if (custom_pad[i] < 0) return absl::InvalidArgumentError("negative padding");
      pad[i] = custom_pad[i];
    }
    return pad;
  }
  if (pad_type == "same" || pad_type == "same_lower") {
    for (size_t i = 0; i < dims; ++i) {
      const int64_t s = strides[i];
      const int64_t out = (in[i] + s - 1) / s;
      const int64_t total = std::max<int64_t>(0, (out - 1) * s + kernel[i] - in[i]);
      const int64_t small = total / 2, large = total - small;
      pad[2 * i] = pad_type == "same" ? small : large;
      pad[2 * i + 1] = pad_type == "same" ? large : small;
    }
    return pad;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown pad_type '", pad_type, "'"));
}

}  // namespace coremlz::execute
