// Building a coremlz gRPC server: the HTTP/2 connection limits, health,
// reflection and message sizes every coremlz server (coremlzd,
// coremlz-worker, coremlz-runner) is built with.
#ifndef COREMLZ_API_SERVER_BUILDER_H_
#define COREMLZ_API_SERVER_BUILDER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "api/server_options.h"
#include "grpcpp/grpcpp.h"

namespace coremlz::api {

// HTTP/2 limits of ServerOptions (keepalive, connection idle/age, streams
// per connection, handshake timeout) as channel arguments.
void ApplyConnectionLimits(const ServerOptions& options, grpc::ServerBuilder* builder);

// Registers health and reflection and builds a server on `address`
// (port 0 picks one; the chosen port is stored in *port).
absl::StatusOr<std::unique_ptr<grpc::Server>> BuildServer(grpc::ServerBuilder* builder, const std::string& address,
                                                          std::shared_ptr<grpc::ServerCredentials> credentials,
                                                          bool reflection, int* port);

}  // namespace coremlz::api

#endif  // COREMLZ_API_SERVER_BUILDER_H_
