// Spatial padding of conv and pooling ops from pad_type (valid, same,
// same_lower, custom) as the MIL op definitions specify it.
#ifndef COREMLZ_EXECUTE_PADDING_H_
#define COREMLZ_EXECUTE_PADDING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace coremlz::execute {

// [begin_0, end_0, begin_1, end_1, ...] for the spatial dims. `kernel` is the
// dilated (effective) kernel size. "same" pads so that out = ceil(in/stride),
// the odd element going at the end; "same_lower" puts it at the beginning.
absl::StatusOr<std::vector<int64_t>> ResolvePadding(const std::string& pad_type,
                                                    absl::Span<const int64_t> custom_pad,
                                                    absl::Span<const int64_t> in,
                                                    absl::Span<const int64_t> kernel,
                                                    absl::Span<const int64_t> strides);

}  // namespace coremlz::execute

#endif  // COREMLZ_EXECUTE_PADDING_H_
