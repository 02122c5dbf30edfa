// The Inspect call: the same upload as Compress, then the model's weight
// inventory, computed as a job of the worker pool.
#ifndef COREMLZ_API_INSPECT_REACTOR_H_
#define COREMLZ_API_INSPECT_REACTOR_H_

#include "api/compressor_service.h"
#include "coremlz/v1/compressor.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace coremlz::api {

// The reactor deletes itself when the call is done.
grpc::ServerReadReactor<v1::InspectRequest>* NewInspectReactor(CompressorService* service,
                                                              grpc::CallbackServerContext* context,
                                                              v1::InspectResponse* response);

}  // namespace coremlz::api

#endif  // COREMLZ_API_INSPECT_REACTOR_H_
