// Whether a device satisfies a validation request's selector. Shared by the
// front's runner pool (choosing runners) and the runners (choosing devices).
#ifndef COREMLZ_API_DEVICE_SELECTOR_H_
#define COREMLZ_API_DEVICE_SELECTOR_H_

#include "coremlz/v1/validation.pb.h"

namespace coremlz::api {

// Empty fields match anything; "any" as model matches anything; model
// matches the identifier exactly or a substring of the name (case-
// insensitive); OS versions compare numerically ("17.4" < "17.10").
bool MatchesSelector(const v1::DeviceInfo& device, const v1::DeviceSelector& selector);

}  // namespace coremlz::api

#endif  // COREMLZ_API_DEVICE_SELECTOR_H_
