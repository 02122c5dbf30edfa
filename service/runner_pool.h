// The front's pool of device runners (coremlz-runner processes on Macs).
// Runners come from a list of addresses and/or "dns:///name:port" names
// (re-resolved on every probe). A prober calls Describe on each; a runner
// that fails is marked down and retried with exponential backoff, and
// coremlz_runner_up{runner} says which are up. A validation goes to the up
// runner with a matching device and the most free slots; on
// RESOURCE_EXHAUSTED, an unreachable runner or one that dies mid-job it
// tries the next (bounded, within the caller's deadline), else answers
// UNAVAILABLE listing what was tried. Cancelling the caller cancels the
// runner's call.
//
// Validations are not queued here (no engine::JobQueue): each runner admits
// its own work and answers RESOURCE_EXHAUSTED when busy, which sends the
// validation to the next runner, so a validation starts at once on its own
// thread and the pool only waits for those in flight when it is destroyed.
#ifndef COREMLZ_SERVICE_RUNNER_POOL_H_
#define COREMLZ_SERVICE_RUNNER_POOL_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "api/credentials.h"
#include "coremlz/v1/runner.grpc.pb.h"
#include "api/server_metrics.h"
#include "api/validator.h"

namespace coremlz::service {

// The metrics and the validator interface live in api/ (coremlz-worker
// shares them); the pool names them as before.
using api::ServerMetrics;
using api::ValidationJob;
using api::Validator;

struct RunnerPoolOptions {
  std::vector<std::string> targets;  // "host:port" or "dns:///name:port"
  api::TlsFiles tls;                 // to dial runners
  std::string token;                 // bearer token for runners
  absl::Duration probe_interval = absl::Seconds(5);
  absl::Duration probe_timeout = absl::Seconds(3);
  absl::Duration max_backoff = absl::Seconds(60);
  int max_attempts = 3;
};

class RunnerPool : public Validator {
 public:
  static absl::StatusOr<std::unique_ptr<RunnerPool>> Create(RunnerPoolOptions options, ServerMetrics* metrics);
  ~RunnerPool() override;

  void Validate(ValidationJob job) override;
  std::vector<v1::RunnerStatus> Runners() const override;
  void SetMetrics(ServerMetrics* metrics) override;
  // Probes every runner now (and re-resolves names); blocks until done.
  void ProbeAll();

 private:
  struct Runner {
    std::string address;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<v1::DeviceRunner::Stub> stub;
    bool up = false;
    bool probed = false;
    v1::RunnerDescription description;
    std::string last_error;
    int failures = 0;
    absl::Time next_probe = absl::InfinitePast();
    absl::Time last_probe = absl::InfinitePast();
  };

  RunnerPool(RunnerPoolOptions options, ServerMetrics* metrics, std::shared_ptr<grpc::ChannelCredentials> creds)
      : options_(std::move(options)), metrics_(metrics), creds_(std::move(creds)) {}
  void Resolve();
  void Probe(const std::string& address, bool force);
  void MarkDown(const std::string& address, const std::string& error);
  absl::StatusOr<v1::ValidationResult> Attempt(const std::string& address, const ValidationJob& job,
                                               grpc::Status* status);
  void Run(ValidationJob job);

  RunnerPoolOptions options_;
  // The server's metrics, which may go away before the pool (a caller can
  // hold the pool longer than the server): used only through WithMetrics,
  // under metrics_mu_, so that SetMetrics(nullptr) waits for every use.
  void WithMetrics(const std::function<void(ServerMetrics*)>& fn);
  absl::Mutex metrics_mu_;
  ServerMetrics* metrics_ ABSL_GUARDED_BY(metrics_mu_) = nullptr;
  std::shared_ptr<grpc::ChannelCredentials> creds_;
  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  std::map<std::string, Runner> runners_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread prober_;
  std::vector<std::thread> jobs_;
  std::atomic<int> active_{0};
};

}  // namespace coremlz::service

#endif  // COREMLZ_SERVICE_RUNNER_POOL_H_
