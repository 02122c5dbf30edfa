// The public Compressor service (gRPC callback API): receives an upload,
// checks it, runs the job on the worker pool, and streams back progress,
// the per-weight report, the artifact and a summary.
#ifndef COREMLZ_SERVICE_COMPRESSOR_SERVICE_H_
#define COREMLZ_SERVICE_COMPRESSOR_SERVICE_H_

#include <atomic>
#include <memory>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "api/credentials.h"
#include "coremlz/v1/compressor.grpc.pb.h"
#include "coremlz/v1/worker.grpc.pb.h"
#include "engine/worker_pool.h"
#include "service/metrics.h"
#include "service/result_cache.h"
#include "service/server_options.h"
#include "service/task_runner.h"
#include "service/validator.h"

namespace coremlz::service {

class CompressorService final : public v1::Compressor::CallbackService {
 public:
  // `validator` may be null (no runner pool): validation requests then fail
  // with FAILED_PRECONDITION.
  CompressorService(const ServerOptions& options, engine::WorkerPool* pool, ServerMetrics* metrics,
                    std::shared_ptr<api::TokenAuth> auth, Validator* validator);
  ~CompressorService() override;

  grpc::ServerBidiReactor<v1::CompressRequest, v1::CompressResponse>* Compress(
      grpc::CallbackServerContext* context) override;
  grpc::ServerReadReactor<v1::InspectRequest>* Inspect(grpc::CallbackServerContext* context,
                                                       v1::InspectResponse* response) override;
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
  const api::TokenAuth* auth() const { return auth_.get(); }
  // The result cache, or null when the server has none (--cache-dir).
  ResultCache* cache() const { return cache_; }
  void SetCache(ResultCache* cache) { cache_ = cache; }
  // Admission of a new call: RESOURCE_EXHAUSTED at max_concurrent_calls,
  // UNAVAILABLE once draining.
  absl::Status Admit();
  void Release();
  // Graceful shutdown: refuse new calls, then wait for those in flight.
  void BeginDrain();
  bool WaitIdle(absl::Time deadline);  // false if calls remain at the deadline
  void UpdateWorkerGauges();

 private:
  ServerOptions options_;
  engine::WorkerPool* pool_;
  ServerMetrics* metrics_;
  std::shared_ptr<api::TokenAuth> auth_;
  Validator* validator_;
  ResultCache* cache_ = nullptr;
  std::atomic<int> active_calls_{0};
  std::atomic<bool> draining_{false};
  TaskRunner tasks_;
};

// The internal Worker service: the same job handling as Compress, for a
// front's remote worker pool.
class WorkerService final : public v1::Worker::CallbackService {
 public:
  explicit WorkerService(CompressorService* compressor) : compressor_(compressor) {}
  grpc::ServerBidiReactor<v1::CompressRequest, v1::CompressResponse>* Run(grpc::CallbackServerContext* context) override {
    return compressor_->Compress(context);
  }

 private:
  CompressorService* compressor_;
};

}  // namespace coremlz::service

#endif  // COREMLZ_SERVICE_COMPRESSOR_SERVICE_H_
