// UTF-8 well-formedness (RFC 3629): no overlong forms, no surrogates, nothing
// above U+10FFFF. Names that reach protobuf `string` fields or YAML output
// must pass this, or they change on the way through.
#ifndef COREMLZ_COMMON_UTF8_H_
#define COREMLZ_COMMON_UTF8_H_

#include "absl/strings/string_view.h"

namespace coremlz {

bool IsValidUtf8(absl::string_view s);

// Valid UTF-8 without C0/C1 control characters or DEL: safe to print in a
// message and to use as an identifier.
bool IsPrintableUtf8(absl::string_view s);

}  // namespace coremlz

#endif  // COREMLZ_COMMON_UTF8_H_
