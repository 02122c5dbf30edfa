// --reflection-requires-token: server reflection (grpc.reflection.v1alpha)
// is gRPC's own service, which knows nothing of our tokens, so this server
// interceptor answers an unauthenticated reflection call's every response
// with an ErrorResponse (UNAUTHENTICATED) in place of what reflection
// computed: no service, file or symbol name reaches a caller without a
// token. (Reflection reports errors in-band this way; grpcurl and grpc_cli
// print them as an UNAUTHENTICATED error.)
#ifndef COREMLZ_API_REFLECTION_GUARD_H_
#define COREMLZ_API_REFLECTION_GUARD_H_

#include <memory>

#include "api/credentials.h"
#include "grpcpp/support/server_interceptor.h"

namespace coremlz::api {

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> ReflectionGuard(
    std::shared_ptr<const api::TokenAuth> auth);

}  // namespace coremlz::api

#endif  // COREMLZ_API_REFLECTION_GUARD_H_
