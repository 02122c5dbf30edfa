// A running coremlzd: gRPC server (Compressor, health, reflection), its
// worker pool, optional runner pool, and the /metrics endpoint. Used by the
// coremlzd binary and started in-process by tests.
#ifndef COREMLZ_SERVICE_SERVER_H_
#define COREMLZ_SERVICE_SERVER_H_

#include <atomic>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/worker_pool.h"
#include "grpcpp/grpcpp.h"
#include "service/compressor_service.h"
#include "service/metrics.h"
#include "service/server_options.h"
#include "service/validator.h"

namespace coremlz::service {

class CoremlzServer {
 public:
  // `pool` null: a local pool from the options. `validator` may be null.
  // Extra services (e.g. a worker's internal service) can be registered.
  static absl::StatusOr<std::unique_ptr<CoremlzServer>> Start(
      const ServerOptions& options, std::unique_ptr<engine::WorkerPool> pool = nullptr,
      std::shared_ptr<Validator> validator = nullptr, std::vector<grpc::Service*> extra_services = {});
  ~CoremlzServer();

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
  CoremlzServer() = default;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<engine::WorkerPool> pool_;
  std::shared_ptr<Validator> validator_;
  std::unique_ptr<ResultCache> cache_;
  std::unique_ptr<CompressorService> service_;
  std::unique_ptr<WorkerService> worker_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread gauges_;
};

// HTTP/2 limits of ServerOptions (keepalive, connection idle/age, streams
// per connection, handshake timeout) as channel arguments.
void ApplyConnectionLimits(const ServerOptions& options, grpc::ServerBuilder* builder);

// Registers health and reflection and builds a server on `address`
// (port 0 picks one; the chosen port is stored in *port).
absl::StatusOr<std::unique_ptr<grpc::Server>> BuildServer(grpc::ServerBuilder* builder, const std::string& address,
                                                          std::shared_ptr<grpc::ServerCredentials> credentials,
                                                          bool reflection, int* port);

}  // namespace coremlz::service

#endif  // COREMLZ_SERVICE_SERVER_H_
