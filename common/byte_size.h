// Sizes as people type them on command lines: "1073741824", "512K", "20M",
// "1.5G", "10GiB" (K/M/G/T are powers of 1024; a trailing B or iB is
// accepted). Shared by every binary's flags.
#ifndef COREMLZ_COMMON_BYTE_SIZE_H_
#define COREMLZ_COMMON_BYTE_SIZE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace coremlz {

// A positive size in bytes; INVALID_ARGUMENT naming the text otherwise.
absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text);

}  // namespace coremlz

#endif  // COREMLZ_COMMON_BYTE_SIZE_H_
