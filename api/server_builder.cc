#include "api/server_builder.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"

namespace coremlz::api {

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

}  // namespace coremlz::api
