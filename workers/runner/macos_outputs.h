// Parsing of the outputs the macOS backend reads: Apple's `devicectl`
// device list and the coremlz harness's result (clients/runner/harness).
#ifndef COREMLZ_WORKERS_RUNNER_MACOS_OUTPUTS_H_
#define COREMLZ_WORKERS_RUNNER_MACOS_OUTPUTS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coremlz/v1/validation.pb.h"

namespace coremlz::runner {

// Parses `devicectl list devices` JSON. Physical iOS/iPadOS devices only
// (the harness app is an iOS app); `harness_ready` false marks them all
// unavailable.
absl::StatusOr<std::vector<v1::DeviceInfo>> ParseDevicectlDevices(const std::string& json, bool harness_ready);

// Parses the harness's result JSON (schema in clients/runner/harness/
// README.md) into `result`: load time, latency, memory, placement,
// fidelity, errors, notes. Sets ran_coreml and passed (against
// `min_psnr_db` when outputs were compared). INVALID_ARGUMENT if the JSON is
// not a harness result.
absl::Status ParseHarnessResult(const std::string& json, double min_psnr_db, bool compared,
                                v1::ValidationResult* result);

// The SoC of a known iPhone model identifier ("iPhone15,2" -> "A16 Bionic"),
// empty if unknown.
std::string ChipForProductType(const std::string& product_type);

}  // namespace coremlz::runner

#endif  // COREMLZ_WORKERS_RUNNER_MACOS_OUTPUTS_H_
