#include "api/channel.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace coremlz::api {

std::optional<HostPort> SplitHostPort(absl::string_view host_port) {
  const size_t colon = host_port.rfind(':');
  if (colon == absl::string_view::npos) return std::nullopt;
  HostPort hp{std::string(host_port.substr(0, colon)), std::string(host_port.substr(colon + 1))};
  if (!hp.host.empty() && hp.host.front() == '[') hp.host = hp.host.substr(1, hp.host.size() - 2);
  return hp;
}

std::optional<std::string> DnsName(absl::string_view target) {
  if (absl::StartsWith(target, "dns:///")) return std::string(target.substr(7));
  if (absl::StartsWith(target, "dns:")) return std::string(target.substr(4));
  return std::nullopt;
}

absl::StatusOr<ResolvedAddresses> ResolveHost(const std::string& host, const std::string& port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int error = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); error != 0) {
    return absl::NotFoundError(absl::StrCat("cannot resolve ", host, ": ", ::gai_strerror(error)));
  }
  ResolvedAddresses out;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (a->ai_family == AF_INET) {
      ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(a->ai_addr)->sin_addr, text, sizeof(text));
      out.ipv4.push_back(absl::StrCat(text, ":", port));
    } else if (a->ai_family == AF_INET6) {
      ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(a->ai_addr)->sin6_addr, text, sizeof(text));
      out.ipv6.push_back(absl::StrCat("[", text, "]:", port));
    }
  }
  ::freeaddrinfo(found);
  return out;
}

std::shared_ptr<grpc::Channel> OpenChannel(const std::string& target,
                                           const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                                           const ChannelOptions& options) {
  grpc::ChannelArguments args;
  if (options.round_robin) args.SetLoadBalancingPolicyName("round_robin");
  args.SetMaxReceiveMessageSize(8 << 20);
  args.SetMaxSendMessageSize(8 << 20);
  if (options.detect_dead_peers) {
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000);
  }
  return grpc::CreateCustomChannel(target, credentials, args);
}

}  // namespace coremlz::api
