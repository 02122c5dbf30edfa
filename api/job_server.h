// A running coremlz job server - coremlzd, or coremlz-worker: the gRPC
// server (Compressor, health, reflection, and an internal service if any),
// its worker pool, the front's validator and result cache if given, and the
// /metrics endpoint. Started in-process by tests too.
#ifndef COREMLZ_API_JOB_SERVER_H_
#define COREMLZ_API_JOB_SERVER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "api/compressor_service.h"
#include "api/plan_fan_out.h"
#include "api/result_store.h"
#include "api/server_metrics.h"
#include "api/server_options.h"
#include "api/validator.h"
#include "engine/worker_pool.h"
#include "grpcpp/grpcpp.h"

namespace coremlz::api {

// What a job server is started with beside its options.
struct JobServerParts {
  std::unique_ptr<engine::WorkerPool> pool;  // null: a local pool from the options
  std::shared_ptr<Validator> validator;      // null: validation requests fail
  // Opens the result cache once the server's metrics exist (unset: none).
  std::function<absl::StatusOr<std::unique_ptr<ResultStore>>(ServerMetrics*)> open_result_store;
  // Another service on the same jobs and admission (unset: none), e.g.
  // coremlz-worker's internal Worker service.
  std::function<std::unique_ptr<grpc::Service>(CompressorService*)> internal_service;
  // Where Plan calls' trials run beyond the job's threads (unset: there only).
  PlanFanOutFactory plan_fan_out;
};

class JobServer {
 public:
  static absl::StatusOr<std::unique_ptr<JobServer>> Start(const ServerOptions& options, JobServerParts parts = {});
  ~JobServer();

  int port() const { return port_; }
  int metrics_port() const { return metrics_->port(); }
  ServerMetrics* metrics() { return metrics_.get(); }
  engine::WorkerPool* pool() { return pool_.get(); }
  CompressorService* compressor() { return service_.get(); }

  // Health turns NOT_SERVING, new calls are refused, calls in flight get
  // `grace` to finish, then are cancelled; the pool is drained.
  void Shutdown(absl::Duration grace);
  void Wait();

 private:
  JobServer() = default;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<engine::WorkerPool> pool_;
  std::shared_ptr<Validator> validator_;
  std::unique_ptr<ResultStore> cache_;
  std::unique_ptr<CompressorService> service_;
  std::unique_ptr<grpc::Service> internal_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread gauges_;
};

}  // namespace coremlz::api

#endif  // COREMLZ_API_JOB_SERVER_H_
