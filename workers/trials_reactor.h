// Worker.Trials on coremlz-worker: a front's Plan call sends the model and
// the plan's options once; the worker makes the study's baseline
// (plan::TrialsForPlan) as a job of its pool (same admission, limits and
// memory budget as Run), then builds the candidates the front asks for
// (answering each with its report and compressed package) and runs trials of
// those candidates, answering each as it finishes, on as many threads as the
// pool has. Cancelling the call stops the builds and the trials (those
// running finish; no new one starts).
#ifndef COREMLZ_WORKERS_TRIALS_REACTOR_H_
#define COREMLZ_WORKERS_TRIALS_REACTOR_H_

#include "api/compressor_service.h"
#include "coremlz/v1/worker.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace coremlz::workers {

grpc::ServerBidiReactor<v1::TrialsRequest, v1::TrialsResponse>* NewTrialsReactor(api::CompressorService* service,
                                                                                  grpc::CallbackServerContext* context);

}  // namespace coremlz::workers

#endif  // COREMLZ_WORKERS_TRIALS_REACTOR_H_
