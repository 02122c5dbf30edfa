// The Compress call: receives an upload, checks it, runs the job on the
// worker pool (or answers from the result cache), and streams back progress,
// the per-weight report, the artifact, a summary and, when asked, on-device
// validation. coremlzd serves it as Compressor.Compress, coremlz-worker as
// Worker.Run too.
//
// The call's skeleton (upload, replies, artifact, stall limits,
// cancellation) is api/upload_call.h, shared with Plan; this file is the
// steps that are Compress's own: the header's config, the result cache,
// the job and its output check, the report, validation.
#ifndef COREMLZ_API_COMPRESS_REACTOR_H_
#define COREMLZ_API_COMPRESS_REACTOR_H_

#include "api/compressor_service.h"
#include "coremlz/v1/compressor.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace coremlz::api {

// The reactor deletes itself when the call is done.
grpc::ServerBidiReactor<v1::CompressRequest, v1::CompressResponse>* NewCompressReactor(
    CompressorService* service, grpc::CallbackServerContext* context);

}  // namespace coremlz::api

#endif  // COREMLZ_API_COMPRESS_REACTOR_H_
