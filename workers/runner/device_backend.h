// A way of running a Core ML model on a device and measuring it. The runner
// agent serves whichever backend it was started with:
//   macos: the real one - compiles with coremlcompiler and runs the coremlz
//          harness on attached iPhones (devicectl) or on the Mac itself;
//   host:  for Linux and tests - validates the package and decompresses every
//          weight, and says plainly that no Core ML prediction ran.
#ifndef COREMLZ_WORKERS_RUNNER_DEVICE_BACKEND_H_
#define COREMLZ_WORKERS_RUNNER_DEVICE_BACKEND_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/device_selector.h"
#include "coremlz/v1/report.pb.h"
#include "coremlz/v1/validation.pb.h"
#include "engine/job_control.h"

namespace coremlz::runner {

struct ValidationInput {
  v1::ValidationRequest request;
  std::string compressed_path;  // .mlpackage directory or .mlmodel file
  std::string original_path;    // empty unless outputs are compared
  v1::Report report;            // the compression report, if the caller sent it
  std::string work_dir;         // scratch space private to this job
};

class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;
  virtual std::string name() const = 0;  // "macos", "host"
  // Devices this backend can run on now (state "available"/"unavailable").
  virtual absl::StatusOr<std::vector<v1::DeviceInfo>> ListDevices() = 0;
  // Runs one validation on `device`. Errors are for failures of the runner
  // itself; a model that fails to compile or load is a result with
  // passed=false and Core ML's messages in `errors`.
  virtual absl::StatusOr<v1::ValidationResult> Run(const v1::DeviceInfo& device, const ValidationInput& input,
                                                  engine::JobControl* control) = 0;
};

using api::MatchesSelector;

}  // namespace coremlz::runner

#endif  // COREMLZ_WORKERS_RUNNER_DEVICE_BACKEND_H_
