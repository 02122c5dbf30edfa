// The Compress call: receives an upload, checks it, runs the job on the
// worker pool (or answers from the result cache), and streams back progress,
// the per-weight report, the artifact, a summary and, when asked, on-device
// validation. coremlzd serves it as Compressor.Compress, coremlz-worker as
// Worker.Run too.
//
// compress_reactor.cc is longer than our other files (~640 lines) for a
// reason: it is one state machine (header, upload, cache, job, artifact,
// validation, stall limits) under one mutex, whose steps all read and write
// that state. What stands alone is in its own file: upload_stream.h,
// upload_session.h,
// artifact_stream.h, job_labels.h, upload_budget.h.
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
