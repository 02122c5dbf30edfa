#include "api/grpc_wire.h"

#include "absl/strings/str_cat.h"
#include "api/client_call.h"
#include "api/grpc_status.h"
#include "coremlz/wire/grpc_wire.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"

namespace coremlz::api {
namespace {

grpc::ByteBuffer Serialize(const google::protobuf::Message& m) {
  std::string bytes = m.SerializeAsString();
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

bool Parse(const grpc::ByteBuffer& buffer, google::protobuf::Message* m) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return false;
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return m->ParseFromString(bytes);
}

// Waits for the next completion with the given tag.
bool Await(grpc::CompletionQueue* cq, void* tag) {
  void* got = nullptr;
  bool ok = false;
  if (!cq->Next(&got, &ok)) return false;
  return ok && got == tag;
}

}  // namespace

absl::StatusOr<ServingStatus> CheckHealth(const std::shared_ptr<grpc::Channel>& channel, const std::string& service,
                                          absl::Duration timeout, const std::string& bearer_token) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  PrepareCall(&ctx, absl::Now() + timeout, bearer_token);
  wire::HealthCheckRequest request;
  request.set_service(service);
  grpc::CompletionQueue cq;
  auto call = stub.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check", Serialize(request), &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (!status.ok()) return FromGrpcStatus(status);
  wire::HealthCheckResponse r;
  if (!Parse(response, &r)) return absl::DataLossError("unparseable health response");
  return static_cast<ServingStatus>(r.status());
}

absl::StatusOr<std::vector<std::string>> ListServices(const std::shared_ptr<grpc::Channel>& channel,
                                                      absl::Duration timeout) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* t1 = reinterpret_cast<void*>(1);
  call->StartCall(t1);
  std::vector<std::string> out;
  absl::Status result;
  if (!Await(&cq, t1)) {
    result = absl::UnavailableError("cannot start the reflection call");
  } else {
    wire::ServerReflectionRequest request;
    request.set_list_services("");
    call->Write(Serialize(request), t1);
    grpc::ByteBuffer response;
    if (!Await(&cq, t1)) {
      result = absl::UnavailableError("cannot send the reflection request");
    } else {
      call->Read(&response, t1);
      if (!Await(&cq, t1)) {
        result = absl::UnavailableError("no reflection response");
      } else {
        wire::ServerReflectionResponse r;
        if (!Parse(response, &r)) {
          result = absl::DataLossError("unparseable reflection response");
        } else if (r.has_error_response()) {
          result = absl::UnknownError(r.error_response().error_message());
        } else {
          for (const auto& s : r.list_services_response().service()) out.push_back(s.name());
        }
      }
    }
  }
  call->WritesDone(t1);
  Await(&cq, t1);
  grpc::Status status;
  call->Finish(&status, t1);
  Await(&cq, t1);
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
  if (!result.ok()) return result;
  if (!status.ok()) return FromGrpcStatus(status);
  return out;
}

}  // namespace coremlz::api
