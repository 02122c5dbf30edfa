// Prometheus metrics of a coremlz server: the standard gRPC server series
// (via an interceptor, so every service on the server is covered) and the
// job series named in docs/architecture.md. Served on a separate /metrics
// port by prometheus-cpp's exposer.
#ifndef COREMLZ_API_SERVER_METRICS_H_
#define COREMLZ_API_SERVER_METRICS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/server_interceptor.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace coremlz::api {

class ServerMetrics {
 public:
  ServerMetrics();

  // Starts the HTTP exposer ("127.0.0.1:0" picks a free port).
  absl::Status Serve(const std::string& address);
  int port() const;
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // An interceptor factory for grpc::ServerBuilder.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InterceptorFactory();

  // gRPC series (used by the interceptor). Every label comes from a closed
  // set, so /metrics does not grow with what callers send: a method no
  // service here declares is counted as service and method "unknown".
  void Started(const std::string& service, const std::string& method, const std::string& type);
  void Handled(const std::string& service, const std::string& method, const std::string& type, int code, double seconds);
  void MessageReceived(const std::string& service, const std::string& method, const std::string& type);
  void MessageSent(const std::string& service, const std::string& method, const std::string& type);

  // Job series. `technique` is reduced to its family ("palettize",
  // "prune+palettize", ..., "other" for anything else).
  void UploadBytes(uint64_t bytes) { upload_bytes_->Increment(static_cast<double>(bytes)); }
  void ArtifactBytes(uint64_t bytes) { artifact_bytes_->Increment(static_cast<double>(bytes)); }
  void Job(const std::string& technique, const std::string& outcome, double seconds);
  void CompressionRatio(double ratio) { ratio_->Observe(ratio); }
  // A job submitted before its upload was complete; how long its worker
  // waited for the upload's bytes (a worker held idle).
  void StreamedJob() { streamed_jobs_->Increment(); }
  void StreamWait(double seconds) { stream_wait_seconds_->Increment(seconds); }
  // A completed job the early start learned from, and the rate it now
  // assumes for int8 (api/learned_stream_rate.h).
  void StreamRateLearned(double int8_bytes_per_second) {
    stream_rate_jobs_->Increment();
    stream_rate_int8_->Set(int8_bytes_per_second);
  }
  void StreamRateInt8(double bytes_per_second) { stream_rate_int8_->Set(bytes_per_second); }
  // `slots_lent`: the pool's running count of idle worker slots lent to a
  // job's groups (WorkerPool::slots_lent); the counter follows it.
  void SetWorkers(int busy, int queued, int64_t slots_lent) {
    workers_busy_->Set(busy);
    queue_depth_->Set(queued);
    absl::MutexLock lock(&slots_lent_mu_);
    if (slots_lent > slots_lent_seen_) {
      slots_lent_->Increment(static_cast<double>(slots_lent - slots_lent_seen_));
      slots_lent_seen_ = slots_lent;
    }
  }
  void Validation(const std::string& device, const std::string& outcome, double seconds);
  void RunnerUp(const std::string& runner, bool up);
  // Plan series. `outcome` of trials: "measured", "pruned", "failed" or
  // "rerun" (anything else is not counted); of plans: OutcomeLabel's.
  void PlanTrials(const std::string& outcome, int count);
  // A candidate a remote worker built again to share another party's trials.
  void PlanSharedBuild() { plan_shared_builds_->Increment(); }
  void Plan(const std::string& outcome, double seconds);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  prometheus::Family<prometheus::Counter>* started_;
  prometheus::Family<prometheus::Counter>* handled_;
  prometheus::Family<prometheus::Histogram>* handling_seconds_;
  prometheus::Family<prometheus::Counter>* msg_received_;
  prometheus::Family<prometheus::Counter>* msg_sent_;
  prometheus::Counter* upload_bytes_;
  prometheus::Counter* artifact_bytes_;
  prometheus::Counter* streamed_jobs_;
  prometheus::Counter* stream_wait_seconds_;
  prometheus::Counter* stream_rate_jobs_;
  prometheus::Gauge* stream_rate_int8_;
  prometheus::Family<prometheus::Counter>* jobs_;
  prometheus::Family<prometheus::Histogram>* job_seconds_;
  prometheus::Histogram* ratio_;
  prometheus::Gauge* workers_busy_;
  prometheus::Gauge* queue_depth_;
  prometheus::Counter* slots_lent_;
  absl::Mutex slots_lent_mu_;
  int64_t slots_lent_seen_ ABSL_GUARDED_BY(slots_lent_mu_) = 0;
  prometheus::Family<prometheus::Counter>* validations_;
  prometheus::Family<prometheus::Histogram>* validation_seconds_;
  prometheus::Family<prometheus::Gauge>* runner_up_;
  std::map<std::string, prometheus::Counter*> plan_trials_;
  prometheus::Counter* plan_shared_builds_;
  prometheus::Family<prometheus::Counter>* plans_;
  prometheus::Family<prometheus::Histogram>* plan_seconds_;
};

// Splits "/pkg.Service/Method" into its parts.
void SplitMethod(const std::string& full, std::string* service, std::string* method);

// The closed set of technique labels: one or two known technique names
// joined by '+', else "other".
std::string TechniqueFamily(const std::string& technique);

}  // namespace coremlz::api

#endif  // COREMLZ_API_SERVER_METRICS_H_
