#include "api/reflection_guard.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/support/byte_buffer.h"

namespace coremlz::api {
namespace {

void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// ServerReflectionResponse{error_response (7): ErrorResponse{error_code (1),
// error_message (2)}} in protobuf wire format: the reflection proto's
// generated classes are not installed with gRPC.
std::string ErrorResponseBytes(const grpc::Status& status) {
  std::string inner;
  inner.push_back(0x08);  // field 1, varint
  AppendVarint(static_cast<uint64_t>(status.error_code()), &inner);
  inner.push_back(0x12);  // field 2, length-delimited
  AppendVarint(status.error_message().size(), &inner);
  inner += status.error_message();
  std::string outer;
  outer.push_back(0x3a);  // field 7, length-delimited
  AppendVarint(inner.size(), &outer);
  outer += inner;
  return outer;
}

class ReflectionGuardInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit ReflectionGuardInterceptor(std::shared_ptr<const api::TokenAuth> auth) : auth_(std::move(auth)) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using H = grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(H::POST_RECV_INITIAL_METADATA)) {
      if (const auto* metadata = methods->GetRecvInitialMetadata()) {
        grpc::Status s = auth_->CheckMetadata(*metadata);
        denied_ = s.ok() ? grpc::Status::OK
                         : grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                        absl::StrCat("server reflection needs a token on this server "
                                                     "(--reflection-requires-token): ", s.error_message()));
      }
    }
    if (methods->QueryInterceptionHookPoint(H::PRE_SEND_MESSAGE) && !denied_.ok()) {
      if (grpc::ByteBuffer* buffer = methods->GetSerializedSendMessage()) {
        const std::string bytes = ErrorResponseBytes(denied_);
        grpc::Slice slice(bytes);
        *buffer = grpc::ByteBuffer(&slice, 1);
      }
    }
    methods->Proceed();
  }

 private:
  std::shared_ptr<const api::TokenAuth> auth_;
  // Until the metadata is checked, deny: no response may go out unchecked.
  grpc::Status denied_{grpc::StatusCode::UNAUTHENTICATED, "server reflection needs a token on this server"};
};

class ReflectionGuardFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit ReflectionGuardFactory(std::shared_ptr<const api::TokenAuth> auth) : auth_(std::move(auth)) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    if (!absl::StartsWith(info->method(), "/grpc.reflection.")) return nullptr;
    return new ReflectionGuardInterceptor(auth_);
  }

 private:
  std::shared_ptr<const api::TokenAuth> auth_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> ReflectionGuard(
    std::shared_ptr<const api::TokenAuth> auth) {
  return std::make_unique<ReflectionGuardFactory>(std::move(auth));
}

}  // namespace coremlz::api
