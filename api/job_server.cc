#include "api/job_server.h"

#include <chrono>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "api/reflection_guard.h"
#include "api/server_builder.h"
#include "grpcpp/health_check_service_interface.h"

namespace coremlz::api {

absl::StatusOr<std::unique_ptr<JobServer>> JobServer::Start(const ServerOptions& options, JobServerParts parts) {
  std::unique_ptr<JobServer> s(new JobServer());
  s->metrics_ = std::make_unique<ServerMetrics>();
  if (!options.metrics_address.empty()) RETURN_IF_ERROR(s->metrics_->Serve(options.metrics_address));
  std::shared_ptr<TokenAuth> auth;
  if (!options.token_file.empty()) { ASSIGN_OR_RETURN(auth, TokenAuth::FromFile(options.token_file)); }
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> creds, ServerCredentials(options.tls));
  std::unique_ptr<engine::WorkerPool> pool = std::move(parts.pool);
  if (!pool) {
    engine::LocalWorkerPoolOptions po;
    po.threads = options.worker_threads;
    po.queue_capacity = options.queue_capacity;
    po.memory_budget = options.memory_budget;
    pool = engine::MakeLocalWorkerPool(po);
  }
  s->pool_ = std::move(pool);
  s->validator_ = std::move(parts.validator);
  if (s->validator_) s->validator_->SetMetrics(s->metrics_.get());
  s->service_ = std::make_unique<CompressorService>(options, s->pool_.get(), s->metrics_.get(), auth, s->validator_.get());
  if (parts.open_result_store) {
    ASSIGN_OR_RETURN(s->cache_, parts.open_result_store(s->metrics_.get()));
    s->service_->SetCache(s->cache_.get());
  }

  grpc::ServerBuilder builder;
  builder.RegisterService(s->service_.get());
  if (parts.plan_fan_out) s->service_->SetPlanFanOut(std::move(parts.plan_fan_out));
  if (parts.internal_service) {
    s->internal_service_ = parts.internal_service(s->service_.get());
    builder.RegisterService(s->internal_service_.get());
  }
  ApplyConnectionLimits(options, &builder);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(s->metrics_->InterceptorFactory());
  if (options.reflection && options.reflection_requires_token && auth) interceptors.push_back(ReflectionGuard(auth));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  ASSIGN_OR_RETURN(s->server_, BuildServer(&builder, options.address, creds, options.reflection, &s->port_));
  // Keep the worker gauges fresh between jobs.
  JobServer* raw = s.get();
  s->gauges_ = std::thread([raw] {
    while (!raw->stopping_.load()) {
      raw->service_->UpdateWorkerGauges();
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  });
  return s;
}

JobServer::~JobServer() { Shutdown(absl::ZeroDuration()); }

void JobServer::Shutdown(absl::Duration grace) {
  if (stopping_.exchange(true)) return;
  const absl::Time deadline = absl::Now() + grace;
  if (server_) {
    server_->GetHealthCheckService()->SetServingStatus(false);
    // Drain before gRPC's own shutdown: new calls get UNAVAILABLE, calls in
    // flight finish, and their clients get a moment to read the final
    // status. gRPC closes connections as soon as its last call ends, and a
    // close with client bytes still unread resets the connection, which can
    // cost a client the status of a call that succeeded.
    service_->BeginDrain();
    if (service_->WaitIdle(deadline)) absl::SleepFor(std::min(absl::Milliseconds(200), deadline - absl::Now()));
    server_->Shutdown(absl::ToChronoTime(deadline));
  }
  if (pool_) pool_->Shutdown(absl::ZeroDuration());
  if (gauges_.joinable()) gauges_.join();
  if (server_) server_->Wait();
  // The validator is shared and may outlive this server: stop it using our
  // metrics (it waits for any use in progress) before they are destroyed.
  if (validator_) validator_->SetMetrics(nullptr);
}

void JobServer::Wait() {
  if (server_) server_->Wait();
}

}  // namespace coremlz::api
