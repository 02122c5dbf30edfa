// What a Compress call asks of on-device validation: run a compressed model
// (and the original, to compare outputs) on a device matching the request.
// The front's runner pool (service/runner_pool.h) implements it.
#ifndef COREMLZ_API_VALIDATOR_H_
#define COREMLZ_API_VALIDATOR_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coremlz/v1/compressor.pb.h"
#include "coremlz/v1/report.pb.h"
#include "coremlz/v1/validation.pb.h"
#include "engine/job_control.h"

namespace coremlz::api {

class ServerMetrics;

struct ValidationJob {
  v1::ValidationRequest request;
  std::string compressed_path;  // model on local disk
  std::string original_path;    // empty unless outputs are compared
  v1::Report report;            // the compression report, for the host backend's checks
  absl::Time deadline = absl::InfiniteFuture();
  std::shared_ptr<engine::JobControl> control;
  std::function<void(absl::StatusOr<v1::ValidationResult>)> done;  // exactly once
};

class Validator {
 public:
  virtual ~Validator() = default;
  virtual void Validate(ValidationJob job) = 0;
  // The runners behind this validator, for ListRunners.
  virtual std::vector<v1::RunnerStatus> Runners() const { return {}; }
  // The server's metrics, once it has them (validators are built first).
  virtual void SetMetrics(ServerMetrics* metrics) {}
};

}  // namespace coremlz::api

#endif  // COREMLZ_API_VALIDATOR_H_
