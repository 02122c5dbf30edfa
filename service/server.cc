#include "service/server.h"

#include <chrono>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "service/reflection_guard.h"

namespace coremlz::service {

absl::StatusOr<std::unique_ptr<grpc::Server>> BuildServer(grpc::ServerBuilder* builder, const std::string& address,
                                                          std::shared_ptr<grpc::ServerCredentials> credentials,
                                                          bool reflection, int* port) {
  grpc::EnableDefaultHealthCheckService(true);
  if (reflection) grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  builder->AddListeningPort(address, credentials, port);
  // Uploads arrive in 1 MiB chunks; leave room for framing.
  builder->SetMaxReceiveMessageSize(4 << 20);
  builder->SetMaxSendMessageSize(4 << 20);
  std::unique_ptr<grpc::Server> server = builder->BuildAndStart();
  if (!server || *port == 0) return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  return server;
}

namespace {

int Millis(absl::Duration d) {
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(d), std::numeric_limits<int>::max()));
}

}  // namespace

void ApplyConnectionLimits(const ServerOptions& options, grpc::ServerBuilder* builder) {
  builder->AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_streams_per_connection);
  // A connection that never completes its handshake (or, in plaintext,
  // never sends HTTP/2 settings) is closed as a call without a header is.
  if (options.header_timeout > absl::ZeroDuration()) {
    builder->AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, Millis(options.header_timeout));
  }
  if (options.keepalive_time > absl::ZeroDuration()) {
    builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, Millis(options.keepalive_time));
    builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
    // Keep pinging through a long job that sends nothing (default: 2 pings).
    builder->AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  }
  // Clients may ping every 5 s (a front pings its workers every 10 s);
  // faster pingers get GOAWAY after gRPC's default 2 strikes.
  builder->AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  if (options.connection_idle > absl::ZeroDuration()) {
    builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, Millis(options.connection_idle));
  }
  // Ending connections after a while also lets fronts, which reach workers
  // through one DNS name and resolve it again only when a connection ends,
  // find workers added by a scale-up. Never cut a call short: the grace is
  // unbounded (calls are bounded by their deadlines and the stall limits).
  if (options.connection_age > absl::ZeroDuration()) {
    builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, Millis(options.connection_age));
    builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, std::numeric_limits<int>::max());
  }
}

absl::StatusOr<std::unique_ptr<CoremlzServer>> CoremlzServer::Start(const ServerOptions& options,
                                                                   std::unique_ptr<engine::WorkerPool> pool,
                                                                   std::shared_ptr<Validator> validator,
                                                                   std::vector<grpc::Service*> extra_services) {
  std::unique_ptr<CoremlzServer> s(new CoremlzServer());
  s->metrics_ = std::make_unique<ServerMetrics>();
  if (!options.metrics_address.empty()) RETURN_IF_ERROR(s->metrics_->Serve(options.metrics_address));
  std::shared_ptr<api::TokenAuth> auth;
  if (!options.token_file.empty()) { ASSIGN_OR_RETURN(auth, api::TokenAuth::FromFile(options.token_file)); }
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> creds, api::ServerCredentials(options.tls));
  if (!pool) {
    engine::LocalWorkerPoolOptions po;
    po.threads = options.worker_threads;
    po.queue_capacity = options.queue_capacity;
    po.memory_budget = options.memory_budget;
    pool = engine::MakeLocalWorkerPool(po);
  }
  s->pool_ = std::move(pool);
  s->validator_ = std::move(validator);
  if (s->validator_) s->validator_->SetMetrics(s->metrics_.get());
  s->service_ = std::make_unique<CompressorService>(options, s->pool_.get(), s->metrics_.get(), auth, s->validator_.get());
  if (!options.cache_dir.empty()) {
    ASSIGN_OR_RETURN(s->cache_, ResultCache::Open({options.cache_dir, options.cache_max_bytes}, s->metrics_->registry().get()));
    s->service_->SetCache(s->cache_.get());
  }

  grpc::ServerBuilder builder;
  builder.RegisterService(s->service_.get());
  if (options.worker_api) {
    s->worker_service_ = std::make_unique<WorkerService>(s->service_.get());
    builder.RegisterService(s->worker_service_.get());
  }
  ApplyConnectionLimits(options, &builder);
  for (grpc::Service* extra : extra_services) builder.RegisterService(extra);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(s->metrics_->InterceptorFactory());
  if (options.reflection && options.reflection_requires_token && auth) interceptors.push_back(ReflectionGuard(auth));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  ASSIGN_OR_RETURN(s->server_, BuildServer(&builder, options.address, creds, options.reflection, &s->port_));
  // Keep the worker gauges fresh between jobs.
  CoremlzServer* raw = s.get();
  s->gauges_ = std::thread([raw] {
    while (!raw->stopping_.load()) {
      raw->service_->UpdateWorkerGauges();
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  });
  return s;
}

CoremlzServer::~CoremlzServer() { Shutdown(absl::ZeroDuration()); }

void CoremlzServer::Shutdown(absl::Duration grace) {
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

void CoremlzServer::Wait() {
  if (server_) server_->Wait();
}

}  // namespace coremlz::service
