// The one mapping between absl::Status (every layer below api/) and
// grpc::Status (the wire). The codes are numerically identical by design of
// both libraries; only the message and code travel, never payloads.
#ifndef COREMLZ_API_GRPC_STATUS_H_
#define COREMLZ_API_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace coremlz::api {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace coremlz::api

#endif  // COREMLZ_API_GRPC_STATUS_H_
