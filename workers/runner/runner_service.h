// The DeviceRunner service of coremlz-runner: describes the attached devices
// and runs validation jobs on them, one job per device at a time; a runner
// with no free matching device answers RESOURCE_EXHAUSTED at once so the
// front tries the next runner.
#ifndef COREMLZ_WORKERS_RUNNER_RUNNER_SERVICE_H_
#define COREMLZ_WORKERS_RUNNER_RUNNER_SERVICE_H_

#include <memory>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "api/credentials.h"
#include "api/transfer.h"
#include "coremlz/v1/runner.grpc.pb.h"
#include "workers/runner/device_backend.h"

namespace coremlz::runner {

struct RunnerOptions {
  std::string runner_id;  // default: hostname
  std::string work_dir;   // job directories (default $TMPDIR)
  api::TransferLimits limits;
  absl::Duration max_job_time = absl::Minutes(30);
};

class RunnerService final : public v1::DeviceRunner::CallbackService {
 public:
  RunnerService(std::unique_ptr<DeviceBackend> backend, RunnerOptions options, std::shared_ptr<api::TokenAuth> auth);
  ~RunnerService() override;

  grpc::ServerUnaryReactor* Describe(grpc::CallbackServerContext* context, const v1::DescribeRequest* request,
                                     v1::RunnerDescription* response) override;
  grpc::ServerBidiReactor<v1::ValidateRequest, v1::ValidateResponse>* Validate(grpc::CallbackServerContext* context) override;

  // Device slots: one job per device.
  absl::StatusOr<v1::DeviceInfo> Acquire(const v1::DeviceSelector& selector);
  void Release(const std::string& device_id);
  DeviceBackend* backend() { return backend_.get(); }
  const RunnerOptions& options() const { return options_; }
  const api::TokenAuth* auth() const { return auth_.get(); }
  int jobs_in_flight() const;

 private:
  std::unique_ptr<DeviceBackend> backend_;
  RunnerOptions options_;
  std::shared_ptr<api::TokenAuth> auth_;
  mutable absl::Mutex mu_;
  std::set<std::string> busy_ ABSL_GUARDED_BY(mu_);
};

}  // namespace coremlz::runner

#endif  // COREMLZ_WORKERS_RUNNER_RUNNER_SERVICE_H_
