// Clients for the standard gRPC health and reflection services, through a
// generic stub (Debian ships no generated code for them).
#ifndef COREMLZ_API_GRPC_WIRE_H_
#define COREMLZ_API_GRPC_WIRE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace coremlz::api {

enum class ServingStatus { kUnknown = 0, kServing = 1, kNotServing = 2, kServiceUnknown = 3 };

// grpc.health.v1.Health/Check for `service` ("" = the whole server).
absl::StatusOr<ServingStatus> CheckHealth(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                                          absl::Duration timeout, const std::string& bearer_token = "");

// The services the server advertises through reflection.
absl::StatusOr<std::vector<std::string>> ListServices(const std::shared_ptr<grpc::Channel>& channel,
                                                      absl::Duration timeout);

}  // namespace coremlz::api

#endif  // COREMLZ_API_GRPC_WIRE_H_
