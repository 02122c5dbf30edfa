// Dialling a coremlz server, worker or runner: what a target names, resolving
// names to addresses, and channels with the limits every client shares.
#ifndef COREMLZ_API_CHANNEL_H_
#define COREMLZ_API_CHANNEL_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/grpcpp.h"

namespace coremlz::api {

struct HostPort {
  std::string host;  // without the brackets of an IPv6 literal
  std::string port;
};

// "host:port" or "[v6]:port"; nullopt when there is no port.
std::optional<HostPort> SplitHostPort(absl::string_view host_port);

// The name of a "dns:///name:port" or "dns:name:port" target ("name:port");
// nullopt for any other target.
std::optional<std::string> DnsName(absl::string_view target);

// A name's addresses as gRPC dials them ("1.2.3.4:port", "[::1]:port"), in
// the resolver's order, by family: gRPC's ipv4:/ipv6: lists take one each.
struct ResolvedAddresses {
  std::vector<std::string> ipv4;
  std::vector<std::string> ipv6;
  size_t size() const { return ipv4.size() + ipv6.size(); }
};

// Resolves `host` now (getaddrinfo, stream sockets); NOT_FOUND if it cannot.
absl::StatusOr<ResolvedAddresses> ResolveHost(const std::string& host, const std::string& port);

struct ChannelOptions {
  // Spread calls over every address of the target (a pool of workers).
  bool round_robin = false;
  // HTTP/2 keepalive and quick reconnects, so that a dead peer is noticed
  // within seconds and round_robin stops picking it.
  bool detect_dead_peers = false;
};

// A channel to `target` allowing the 8 MiB messages every coremlz party
// allows (a chunk of at most 1 MiB, a report, a header with a file list).
std::shared_ptr<grpc::Channel> OpenChannel(const std::string& target,
                                           const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                                           const ChannelOptions& options = {});

}  // namespace coremlz::api

#endif  // COREMLZ_API_CHANNEL_H_
