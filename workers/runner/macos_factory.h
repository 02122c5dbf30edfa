// Builds the macOS backend from the runner config (kept apart so that the
// config code does not depend on the backend's internals).
#ifndef COREMLZ_WORKERS_RUNNER_MACOS_FACTORY_H_
#define COREMLZ_WORKERS_RUNNER_MACOS_FACTORY_H_

#include <memory>

#include "absl/status/statusor.h"
#include "workers/runner/device_backend.h"

namespace coremlz::runner {

struct RunnerConfig;
absl::StatusOr<std::unique_ptr<DeviceBackend>> MakeMacosBackend(const RunnerConfig& config);

}  // namespace coremlz::runner

#endif  // COREMLZ_WORKERS_RUNNER_MACOS_FACTORY_H_
