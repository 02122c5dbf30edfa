// The host backend: everything a runner can honestly do without Core ML.
// It opens and validates the compressed package, decompresses every
// constexpr weight with coremlz's independent reader and times it, checks
// the decompressed weights against the original (when sent) and against the
// compression report's claims. It never reports a latency, load time or
// memory figure: ran_coreml is false and the notes say why.
#ifndef COREMLZ_WORKERS_RUNNER_HOST_BACKEND_H_
#define COREMLZ_WORKERS_RUNNER_HOST_BACKEND_H_

#include <string>

#include "absl/time/time.h"
#include "workers/runner/device_backend.h"

namespace coremlz::runner {

struct HostBackendOptions {
  // The device this backend presents (a Linux host, for selectors).
  std::string device_name = "Linux host";
  std::string device_model = "linux-host";
  // Test knob: sleep this long per run (to exercise failover). 0 in production.
  absl::Duration delay = absl::ZeroDuration();
  // A weight whose SNR differs from the report's claim by more than this fails.
  double report_tolerance_db = 0.01;
};

class HostBackend : public DeviceBackend {
 public:
  explicit HostBackend(HostBackendOptions options) : options_(std::move(options)) {}
  std::string name() const override { return "host"; }
  absl::StatusOr<std::vector<v1::DeviceInfo>> ListDevices() override;
  absl::StatusOr<v1::ValidationResult> Run(const v1::DeviceInfo& device, const ValidationInput& input,
                                          engine::JobControl* control) override;

 private:
  HostBackendOptions options_;
};

}  // namespace coremlz::runner

#endif  // COREMLZ_WORKERS_RUNNER_HOST_BACKEND_H_
