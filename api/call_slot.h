// A streaming call's place among the server's --max-calls: taken at the
// call's start (the bearer token, then admission:
// CompressorService::AdmitCall) and given back once, as soon as the call
// ends or its caller goes - not when gRPC finally lets go of the reactor.
// Compress and Inspect each hold one under their call's mutex; the class
// itself is not thread-safe.
#ifndef COREMLZ_API_CALL_SLOT_H_
#define COREMLZ_API_CALL_SLOT_H_

#include "api/compressor_service.h"
#include "grpcpp/grpcpp.h"

namespace coremlz::api {

class CallSlot {
 public:
  // OK: the slot is held until Release.
  grpc::Status Take(CompressorService* service, const grpc::CallbackServerContext& context) {
    grpc::Status s = service->AdmitCall(context);
    if (s.ok()) service_ = service;
    return s;
  }
  // Gives the slot back; again, or without one, nothing.
  void Release() {
    if (service_ != nullptr) service_->Release();
    service_ = nullptr;
  }

 private:
  CompressorService* service_ = nullptr;  // while the slot is held
};

}  // namespace coremlz::api

#endif  // COREMLZ_API_CALL_SLOT_H_
