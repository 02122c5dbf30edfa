// Used only while the macOS backend is not part of the build.
#include "absl/status/status.h"
#include "workers/runner/macos_factory.h"
#include "workers/runner/runner_config.h"

namespace coremlz::runner {

absl::StatusOr<std::unique_ptr<DeviceBackend>> MakeMacosBackend(const RunnerConfig&) {
  return absl::UnimplementedError("this build has no macOS backend");
}

}  // namespace coremlz::runner
