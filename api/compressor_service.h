// The public Compressor service (gRPC callback API) of every coremlz job
// server: Compress and Inspect (compress_reactor.h, inspect_reactor.h),
// ListRunners, and the admission of calls that the reactors share with the
// worker's Run.
#ifndef COREMLZ_API_COMPRESSOR_SERVICE_H_
#define COREMLZ_API_COMPRESSOR_SERVICE_H_

#include <atomic>
#include <memory>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "api/credentials.h"
#include "api/learned_stream_rate.h"
#include "api/plan_fan_out.h"
#include "api/result_store.h"
#include "api/server_metrics.h"
#include "api/server_options.h"
#include "api/task_runner.h"
#include "api/validator.h"
#include "coremlz/v1/compressor.grpc.pb.h"
#include "engine/worker_pool.h"

namespace coremlz::api {

class CompressorService final : public v1::Compressor::CallbackService {
 public:
  // `validator` may be null (no runner pool): validation requests then fail
  // with FAILED_PRECONDITION.
  CompressorService(const ServerOptions& options, engine::WorkerPool* pool, ServerMetrics* metrics,
                    std::shared_ptr<TokenAuth> auth, Validator* validator);
  ~CompressorService() override;

  grpc::ServerBidiReactor<v1::CompressRequest, v1::CompressResponse>* Compress(
      grpc::CallbackServerContext* context) override;
  grpc::ServerReadReactor<v1::InspectRequest>* Inspect(grpc::CallbackServerContext* context,
                                                       v1::InspectResponse* response) override;
  grpc::ServerBidiReactor<v1::PlanRequest, v1::PlanResponse>* Plan(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ListRunners(grpc::CallbackServerContext* context, const v1::ListRunnersRequest* request,
                                        v1::ListRunnersResponse* response) override;

  // Calls in flight (for graceful shutdown and tests).
  int active_calls() const { return active_calls_.load(); }

  // Shared with the reactors.
  const ServerOptions& options() const { return options_; }
  engine::WorkerPool* pool() const { return pool_; }
  ServerMetrics* metrics() const { return metrics_; }
  Validator* validator() const { return validator_; }
  TaskRunner* tasks() { return &tasks_; }
  // The compression rate a Compress job's early start assumes.
  LearnedStreamRate* stream_rate() { return &stream_rate_; }
  const TokenAuth* auth() const { return auth_.get(); }
  // The result cache, or null when the server has none (--cache-dir).
  ResultStore* cache() const { return cache_; }
  void SetCache(ResultStore* cache) { cache_ = cache; }
  // Where Plan calls' trials run beyond the job's threads (unset: there only).
  const PlanFanOutFactory& plan_fan_out() const { return plan_fan_out_; }
  void SetPlanFanOut(PlanFanOutFactory factory) { plan_fan_out_ = std::move(factory); }
  // Admission of a new call: RESOURCE_EXHAUSTED at max_concurrent_calls,
  // UNAVAILABLE once draining.
  absl::Status Admit();
  // A streaming call's start, the same for every reactor: the bearer token
  // (when the server has tokens), then Admit. OK means the caller must
  // Release() when the call ends.
  grpc::Status AdmitCall(const grpc::CallbackServerContext& context);
  void Release();
  // Graceful shutdown: refuse new calls, then wait for those in flight.
  void BeginDrain();
  bool WaitIdle(absl::Time deadline);  // false if calls remain at the deadline
  void UpdateWorkerGauges();

 private:
  ServerOptions options_;
  engine::WorkerPool* pool_;
  ServerMetrics* metrics_;
  std::shared_ptr<TokenAuth> auth_;
  Validator* validator_;
  ResultStore* cache_ = nullptr;
  PlanFanOutFactory plan_fan_out_;
  std::atomic<int> active_calls_{0};
  std::atomic<bool> draining_{false};
  TaskRunner tasks_;
  LearnedStreamRate stream_rate_;
};

}  // namespace coremlz::api

#endif  // COREMLZ_API_COMPRESSOR_SERVICE_H_
